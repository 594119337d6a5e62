/* Message encoding and decoding for protocol 1.0 (PROTOCOL.md sections 2-5). */
#include "esb.h"

void esb_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void esb_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

void esb_put_u64(uint8_t *p, uint64_t v)
{
    esb_put_u32(p, (uint32_t)(v & 0xFFFFFFFFu));
    esb_put_u32(p + 4, (uint32_t)(v >> 32));
}

uint16_t esb_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}

uint32_t esb_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint64_t esb_get_u64(const uint8_t *p)
{
    return (uint64_t)esb_get_u32(p) | ((uint64_t)esb_get_u32(p + 4) << 32);
}

size_t esb_dtype_size(uint8_t dtype)
{
    switch (dtype) {
    case ESB_DTYPE_U8: case ESB_DTYPE_I8: return 1;
    case ESB_DTYPE_U16: case ESB_DTYPE_I16: return 2;
    case ESB_DTYPE_U32: case ESB_DTYPE_I32: case ESB_DTYPE_F32: return 4;
    case ESB_DTYPE_F64: case ESB_DTYPE_C64: return 8;
    case ESB_DTYPE_C128: return 16;
    default: return 0;
    }
}

static void write_header(const esb_header_t *h, uint8_t *p)
{
    unsigned k;
    p[0] = (uint8_t)ESB_VERSION_MAJOR;
    p[1] = (uint8_t)ESB_VERSION_MINOR;
    p[2] = (uint8_t)ESB_HEADER_LEN;
    p[3] = h->msg_type;
    p[4] = h->sensor_kind;
    p[5] = h->flags;
    p[6] = h->dtype;
    p[7] = h->ndim;
    esb_put_u32(p + 8, h->seq);
    esb_put_u64(p + 12, h->time_us);
    for (k = 0; k < ESB_MAX_NDIM; k++) {
        esb_put_u32(p + 20 + 4 * k, k < h->ndim ? h->dims[k] : 0u);
    }
}

size_t esb_frame_max_size(size_t payload_len)
{
    return esb_cobs_max_encoded(ESB_HEADER_LEN + payload_len + ESB_CRC_LEN) + 1u;
}

size_t esb_encode_frame(const esb_header_t *header, const uint8_t *a, size_t a_len,
                        const uint8_t *b, size_t b_len, uint8_t *out, size_t out_cap)
{
    uint8_t head[ESB_HEADER_LEN];
    uint8_t crc_bytes[ESB_CRC_LEN];
    uint32_t crc;
    esb_cobs_writer_t w;
    if (header->ndim > ESB_MAX_NDIM) {
        return 0;
    }
    write_header(header, head);
    crc = esb_crc32_update(0, head, sizeof head);
    crc = esb_crc32_update(crc, a, a_len);
    crc = esb_crc32_update(crc, b, b_len);
    esb_put_u32(crc_bytes, crc);
    esb_cobs_writer_init(&w, out, out_cap);
    esb_cobs_writer_put(&w, head, sizeof head);
    esb_cobs_writer_put(&w, a, a_len);
    esb_cobs_writer_put(&w, b, b_len);
    esb_cobs_writer_put(&w, crc_bytes, sizeof crc_bytes);
    return esb_cobs_writer_finish(&w, 1);
}

static void header_init(esb_header_t *h, uint8_t msg_type, uint32_t seq, uint64_t time_us)
{
    unsigned k;
    h->major = (uint8_t)ESB_VERSION_MAJOR;
    h->minor = (uint8_t)ESB_VERSION_MINOR;
    h->header_len = (uint8_t)ESB_HEADER_LEN;
    h->msg_type = msg_type;
    h->sensor_kind = ESB_KIND_NONE;
    h->flags = 0;
    h->dtype = ESB_DTYPE_NONE;
    h->ndim = 0;
    h->seq = seq;
    h->time_us = time_us;
    for (k = 0; k < ESB_MAX_NDIM; k++) {
        h->dims[k] = 0;
    }
}

size_t esb_encode_data(uint32_t seq, uint64_t time_us, uint8_t sensor_kind, uint8_t dtype, uint8_t ndim,
                       const uint32_t *dims, const uint8_t *payload, size_t payload_len,
                       uint8_t *out, size_t out_cap)
{
    esb_header_t h;
    unsigned k;
    if (ndim > ESB_MAX_NDIM) {
        return 0;
    }
    header_init(&h, ESB_MSG_DATA, seq, time_us);
    h.sensor_kind = sensor_kind;
    h.dtype = dtype;
    h.ndim = ndim;
    for (k = 0; k < ndim; k++) {
        h.dims[k] = dims[k];
    }
    return esb_encode_frame(&h, payload, payload_len, NULL, 0, out, out_cap);
}

size_t esb_write_status(const esb_status_t *s, uint8_t *out, size_t out_cap)
{
    if (out_cap < ESB_STATUS_LEN) {
        return 0;
    }
    esb_put_u32(out + 0, s->frames_captured);
    esb_put_u32(out + 4, s->frames_sent);
    esb_put_u32(out + 8, s->overflow_drops);
    esb_put_u32(out + 12, s->rx_corrupt);
    esb_put_u32(out + 16, s->rx_unknown);
    esb_put_u32(out + 20, s->last_error);
    esb_put_u32(out + 24, s->uptime_ms);
    return ESB_STATUS_LEN;
}

size_t esb_encode_status(uint32_t status_seq, uint64_t time_us, const esb_status_t *status,
                         uint8_t *out, size_t out_cap)
{
    esb_header_t h;
    uint8_t rec[ESB_STATUS_LEN];
    header_init(&h, ESB_MSG_STATUS, status_seq, time_us);
    esb_write_status(status, rec, sizeof rec);
    return esb_encode_frame(&h, rec, sizeof rec, NULL, 0, out, out_cap);
}

static size_t cstr_len(const char *s, size_t limit)
{
    size_t n = 0;
    if (s == NULL) {
        return 0;
    }
    while (n < limit && s[n] != '\0') {
        n++;
    }
    return n;
}

size_t esb_write_device_info(const esb_device_info_t *info, uint8_t *out, size_t out_cap)
{
    size_t plen = cstr_len(info->profile, 0xFFFFu);
    size_t flen = cstr_len(info->firmware, 0xFFu);
    size_t need = 34u + plen + 1u + flen;
    size_t k;
    if (out_cap < need || info->ndim > ESB_MAX_NDIM) {
        return 0;
    }
    esb_put_u32(out + 0, info->capabilities);
    esb_put_u32(out + 4, info->max_payload);
    esb_put_u32(out + 8, info->frame_period_us);
    out[12] = info->sensor_kind;
    out[13] = info->dtype;
    out[14] = info->ndim;
    out[15] = 0;
    for (k = 0; k < ESB_MAX_NDIM; k++) {
        esb_put_u32(out + 16 + 4 * k, k < info->ndim ? info->dims[k] : 0u);
    }
    esb_put_u16(out + 32, (uint16_t)plen);
    for (k = 0; k < plen; k++) {
        out[34 + k] = (uint8_t)info->profile[k];
    }
    out[34 + plen] = (uint8_t)flen;
    for (k = 0; k < flen; k++) {
        out[35 + plen + k] = (uint8_t)info->firmware[k];
    }
    return need;
}

size_t esb_encode_ack(uint32_t request_id, uint8_t request_type, uint64_t time_us,
                      const uint8_t *answer, size_t answer_len, uint8_t *out, size_t out_cap)
{
    esb_header_t h;
    uint8_t prefix[4];
    header_init(&h, ESB_MSG_ACK, request_id, time_us);
    prefix[0] = request_type;
    prefix[1] = 0;
    prefix[2] = 0;
    prefix[3] = 0;
    return esb_encode_frame(&h, prefix, sizeof prefix, answer, answer_len, out, out_cap);
}

size_t esb_encode_nak(uint32_t request_id, uint8_t request_type, uint8_t code, uint64_t time_us,
                      const char *message, uint8_t *out, size_t out_cap)
{
    esb_header_t h;
    uint8_t prefix[4];
    header_init(&h, ESB_MSG_NAK, request_id, time_us);
    prefix[0] = request_type;
    prefix[1] = code;
    prefix[2] = 0;
    prefix[3] = 0;
    return esb_encode_frame(&h, prefix, sizeof prefix, (const uint8_t *)message, cstr_len(message, 200u),
                            out, out_cap);
}

size_t esb_encode_request(uint8_t msg_type, uint32_t request_id, const uint8_t *payload, size_t payload_len,
                          uint8_t *out, size_t out_cap)
{
    esb_header_t h;
    header_init(&h, msg_type, request_id, 0);
    return esb_encode_frame(&h, payload, payload_len, NULL, 0, out, out_cap);
}

esb_result_t esb_decode_frame(uint8_t *frame, size_t len, esb_msg_t *msg)
{
    size_t body_len = 0, k;
    esb_result_t r;
    esb_header_t *h = &msg->header;
    uint32_t crc;
    r = esb_cobs_decode(frame, len, frame, len, &body_len);
    if (r != ESB_OK) {
        return r == ESB_ERR_ROOM ? ESB_ERR_COBS : r;
    }
    if (body_len < ESB_MIN_BODY) {
        return ESB_ERR_SHORT;
    }
    crc = esb_crc32_update(0, frame, body_len - ESB_CRC_LEN);
    if (crc != esb_get_u32(frame + body_len - ESB_CRC_LEN)) {
        return ESB_ERR_CRC;
    }
    h->major = frame[0];
    h->minor = frame[1];
    h->header_len = frame[2];
    if (h->major != ESB_VERSION_MAJOR) {
        /* only the invariant fields (PROTOCOL.md section 2) may be read */
        h->msg_type = frame[3];
        h->seq = body_len >= 12u + ESB_CRC_LEN ? esb_get_u32(frame + 8) : 0u;
        return ESB_ERR_VERSION;
    }
    if (h->header_len < ESB_HEADER_LEN || body_len < (size_t)h->header_len + ESB_CRC_LEN) {
        return ESB_ERR_HEADER;
    }
    h->msg_type = frame[3];
    h->sensor_kind = frame[4];
    h->flags = frame[5];
    h->dtype = frame[6];
    h->ndim = frame[7];
    if (h->ndim > ESB_MAX_NDIM) {
        return ESB_ERR_HEADER;
    }
    h->seq = esb_get_u32(frame + 8);
    h->time_us = esb_get_u64(frame + 12);
    for (k = 0; k < ESB_MAX_NDIM; k++) {
        h->dims[k] = esb_get_u32(frame + 20 + 4 * k);
    }
    msg->payload = frame + h->header_len;
    msg->payload_len = body_len - h->header_len - ESB_CRC_LEN;
    return ESB_OK;
}

void esb_rx_init(esb_rx_t *rx, uint8_t *buf, size_t cap)
{
    rx->buf = buf;
    rx->cap = cap;
    esb_rx_reset(rx);
}

void esb_rx_reset(esb_rx_t *rx)
{
    rx->len = 0;
    rx->overflow = 0;
}

int esb_rx_push(esb_rx_t *rx, uint8_t byte)
{
    if (byte == 0) {
        if (rx->overflow) {
            esb_rx_reset(rx);
            return -1;
        }
        return rx->len > 0 ? 1 : 0;
    }
    if (rx->len < rx->cap) {
        rx->buf[rx->len++] = byte;
    } else {
        rx->overflow = 1;
    }
    return 0;
}
