/*
 * edgesense bridge protocol 1.0, device side (see ../PROTOCOL.md).
 *
 * Portable C99 for firmware: no heap, no floating point, no OS calls. Every function works on
 * buffers the caller provides and reports lack of room instead of overrunning.
 */
#ifndef ESB_H
#define ESB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ESB_VERSION_MAJOR 1u
#define ESB_VERSION_MINOR 0u
#define ESB_HEADER_LEN 36u   /* header length of protocol 1.0 */
#define ESB_CRC_LEN 4u
#define ESB_MAX_NDIM 4u
#define ESB_MIN_BODY 7u      /* invariant prefix (3 bytes) + CRC */

/* Message types (PROTOCOL.md section 3). */
enum {
    ESB_MSG_HELLO = 0x01,
    ESB_MSG_START = 0x02,
    ESB_MSG_STOP = 0x03,
    ESB_MSG_CONFIGURE = 0x04,
    ESB_MSG_PING = 0x05,
    ESB_MSG_GET_STATUS = 0x06,
    ESB_MSG_FAULTS = 0x40,   /* emulator fault injection (vendor/test range 0x40..0x5F) */
    ESB_MSG_ACK = 0x80,
    ESB_MSG_NAK = 0x81,
    ESB_MSG_DATA = 0x90,
    ESB_MSG_STATUS = 0x91
};

/* Sensor kinds. */
enum { ESB_KIND_NONE = 0, ESB_KIND_RADAR_CIR = 1, ESB_KIND_RDI = 2, ESB_KIND_SPEAKER_IV = 3, ESB_KIND_OTHER = 255 };

/* Payload element types (PROTOCOL.md section 4). */
enum {
    ESB_DTYPE_NONE = 0, ESB_DTYPE_U8 = 1, ESB_DTYPE_I8 = 2, ESB_DTYPE_U16 = 3, ESB_DTYPE_I16 = 4,
    ESB_DTYPE_U32 = 5, ESB_DTYPE_I32 = 6, ESB_DTYPE_F32 = 7, ESB_DTYPE_F64 = 8,
    ESB_DTYPE_C64 = 9, ESB_DTYPE_C128 = 10
};

/* NAK error codes. */
enum {
    ESB_NAK_VERSION = 1, ESB_NAK_UNKNOWN_TYPE = 2, ESB_NAK_MALFORMED = 3,
    ESB_NAK_UNKNOWN_PROFILE = 4, ESB_NAK_BUSY = 5, ESB_NAK_UNSUPPORTED = 6
};

/* Device capability bits. */
#define ESB_CAP_STATUS 0x1u
#define ESB_CAP_CONFIGURE 0x2u
#define ESB_CAP_FAULTS 0x4u

/* Results of decoding. */
typedef enum {
    ESB_OK = 0,
    ESB_ERR_ROOM = -1,     /* output buffer too small */
    ESB_ERR_COBS = -2,     /* not a valid COBS frame */
    ESB_ERR_SHORT = -3,    /* body too short */
    ESB_ERR_CRC = -4,      /* CRC mismatch */
    ESB_ERR_VERSION = -5,  /* valid message of another major version: only major/minor are set */
    ESB_ERR_HEADER = -6    /* impossible header (header_len, ndim) */
} esb_result_t;

typedef struct {
    uint8_t major;
    uint8_t minor;
    uint8_t header_len;
    uint8_t msg_type;
    uint8_t sensor_kind;
    uint8_t flags;
    uint8_t dtype;
    uint8_t ndim;
    uint32_t seq;
    uint64_t time_us;
    uint32_t dims[ESB_MAX_NDIM];
} esb_header_t;

/* A decoded message; payload points into the caller's frame buffer. */
typedef struct {
    esb_header_t header;
    const uint8_t *payload;
    size_t payload_len;
} esb_msg_t;

typedef struct {
    uint32_t frames_captured;
    uint32_t frames_sent;
    uint32_t overflow_drops;
    uint32_t rx_corrupt;
    uint32_t rx_unknown;
    uint32_t last_error;
    uint32_t uptime_ms;
} esb_status_t;
#define ESB_STATUS_LEN 28u

typedef struct {
    uint32_t capabilities;
    uint32_t max_payload;
    uint32_t frame_period_us;
    uint8_t sensor_kind;
    uint8_t dtype;
    uint8_t ndim;
    uint32_t dims[ESB_MAX_NDIM];
    const char *profile;    /* built-in profile name or JSON object, NUL-terminated */
    const char *firmware;   /* firmware identification, NUL-terminated, <= 255 bytes */
} esb_device_info_t;

/* ---- CRC-32 (IEEE, as zlib.crc32): start with crc = 0. ---- */
uint32_t esb_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/* ---- COBS ---- */
/* Largest encoded size of a body of len bytes, without the 0x00 delimiter. */
size_t esb_cobs_max_encoded(size_t len);
/* Encode in[0..len) into out (no delimiter); returns bytes written, 0 if out_cap is too small. */
size_t esb_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);
/* Streaming encoder: feed any number of segments, then finish (which appends the 0x00 delimiter).
 * Produces the canonical encoding (no empty block after a final 254-byte run). */
typedef struct {
    uint8_t *out;
    size_t cap;
    size_t pos;
    size_t code_pos;
    uint8_t code;
    uint8_t block_open;
    uint8_t full;
} esb_cobs_writer_t;

void esb_cobs_writer_init(esb_cobs_writer_t *w, uint8_t *out, size_t cap);
void esb_cobs_writer_put(esb_cobs_writer_t *w, const uint8_t *data, size_t len);
/* Closes the frame; with_delimiter appends 0x00. Returns total bytes written, 0 if out of room. */
size_t esb_cobs_writer_finish(esb_cobs_writer_t *w, int with_delimiter);
/* Decode one frame (without delimiter). out may equal in (in-place). */
esb_result_t esb_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len);

/* ---- element sizes ---- */
/* Bytes per element of a dtype code, 0 if unknown. */
size_t esb_dtype_size(uint8_t dtype);

/* ---- encoding complete wire frames: COBS(header payload crc) 0x00 ----
 * The payload is given as two segments (a and b, either may be empty) so that answers with a
 * prefix need no copy. Returns the number of bytes written to out, or 0 if out_cap is too small.
 * header->major, minor and header_len are filled in by the encoder (1, 0, 36). */
size_t esb_encode_frame(const esb_header_t *header, const uint8_t *a, size_t a_len,
                        const uint8_t *b, size_t b_len, uint8_t *out, size_t out_cap);

/* Largest wire size of a message with payload_len payload bytes (including delimiter). */
size_t esb_frame_max_size(size_t payload_len);

size_t esb_encode_data(uint32_t seq, uint64_t time_us, uint8_t sensor_kind, uint8_t dtype, uint8_t ndim,
                       const uint32_t *dims, const uint8_t *payload, size_t payload_len,
                       uint8_t *out, size_t out_cap);
size_t esb_encode_status(uint32_t status_seq, uint64_t time_us, const esb_status_t *status,
                         uint8_t *out, size_t out_cap);
size_t esb_encode_ack(uint32_t request_id, uint8_t request_type, uint64_t time_us,
                      const uint8_t *answer, size_t answer_len, uint8_t *out, size_t out_cap);
size_t esb_encode_nak(uint32_t request_id, uint8_t request_type, uint8_t code, uint64_t time_us,
                      const char *message, uint8_t *out, size_t out_cap);
/* A host request (used by tests and host-side tools written in C). */
size_t esb_encode_request(uint8_t msg_type, uint32_t request_id, const uint8_t *payload, size_t payload_len,
                          uint8_t *out, size_t out_cap);

/* Records carried in payloads. Return bytes written, 0 if out_cap is too small. */
size_t esb_write_status(const esb_status_t *status, uint8_t *out, size_t out_cap);
size_t esb_write_device_info(const esb_device_info_t *info, uint8_t *out, size_t out_cap);

/* ---- decoding ----
 * Decode one received frame (COBS bytes between delimiters) in place: COBS, CRC, header.
 * On ESB_OK msg is complete; on ESB_ERR_VERSION only the invariant fields major, minor, header_len,
 * msg_type and seq (0 if the body is too short to hold it) are set. */
esb_result_t esb_decode_frame(uint8_t *frame, size_t len, esb_msg_t *msg);

/* ---- receiving: accumulate bytes up to each 0x00 delimiter in a fixed buffer ---- */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow;      /* the current candidate exceeded cap: it will be reported as corrupt */
} esb_rx_t;

void esb_rx_init(esb_rx_t *rx, uint8_t *buf, size_t cap);
/* Push one received byte. Returns 1 when a delimiter completed a non-empty candidate, which is then
 * in rx->buf[0..rx->len) (call esb_rx_reset after handling it); -1 when a delimiter ended an
 * oversized candidate (counts as corrupt); 0 otherwise. */
int esb_rx_push(esb_rx_t *rx, uint8_t byte);
void esb_rx_reset(esb_rx_t *rx);

/* Little-endian helpers. */
void esb_put_u16(uint8_t *p, uint16_t v);
void esb_put_u32(uint8_t *p, uint32_t v);
void esb_put_u64(uint8_t *p, uint64_t v);
uint16_t esb_get_u16(const uint8_t *p);
uint32_t esb_get_u32(const uint8_t *p);
uint64_t esb_get_u64(const uint8_t *p);

#ifdef __cplusplus
}
#endif

#endif /* ESB_H */
