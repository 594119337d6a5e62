/* Unit tests of the device-side bridge core. Exit status 0 when every check passes. */
#include <stdio.h>
#include <string.h>

#include "esb.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond) do { checks++; if (!(cond)) { failures++; \
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

static void test_crc32(void)
{
    const uint8_t check[] = "123456789";
    uint32_t whole = esb_crc32_update(0, check, 9);
    uint32_t split = esb_crc32_update(esb_crc32_update(0, check, 4), check + 4, 5);
    CHECK(whole == 0xCBF43926u);
    CHECK(split == whole);
    CHECK(esb_crc32_update(0, check, 0) == 0u);
}

static void cobs_case(const uint8_t *in, size_t n, const uint8_t *expected, size_t m)
{
    uint8_t enc[600];
    uint8_t dec[600];
    size_t got = esb_cobs_encode(in, n, enc, sizeof enc);
    size_t dec_len = 0;
    size_t k;
    int zero_free = 1;
    CHECK(got == m);
    CHECK(got == m && memcmp(enc, expected, m) == 0);
    CHECK(got <= esb_cobs_max_encoded(n));
    for (k = 0; k < got; k++) {
        if (enc[k] == 0) {
            zero_free = 0;
        }
    }
    CHECK(zero_free);
    CHECK(esb_cobs_decode(enc, got, dec, sizeof dec, &dec_len) == ESB_OK);
    CHECK(dec_len == n && memcmp(dec, in, n) == 0);
    /* in place */
    CHECK(esb_cobs_decode(enc, got, enc, got, &dec_len) == ESB_OK);
    CHECK(dec_len == n && memcmp(enc, in, n) == 0);
}

static void test_cobs(void)
{
    uint8_t in[300], out[300];
    size_t k;
    { const uint8_t i[] = {0x00}, e[] = {0x01, 0x01}; cobs_case(i, 1, e, 2); }
    { const uint8_t i[] = {0x00, 0x00}, e[] = {0x01, 0x01, 0x01}; cobs_case(i, 2, e, 3); }
    { const uint8_t i[] = {0x11, 0x22, 0x00, 0x33}, e[] = {0x03, 0x11, 0x22, 0x02, 0x33}; cobs_case(i, 4, e, 5); }
    { const uint8_t i[] = {0x11, 0x22, 0x33, 0x44}, e[] = {0x05, 0x11, 0x22, 0x33, 0x44}; cobs_case(i, 4, e, 5); }
    { const uint8_t i[] = {0x11, 0x00, 0x00, 0x00}, e[] = {0x02, 0x11, 0x01, 0x01, 0x01}; cobs_case(i, 4, e, 5); }
    { const uint8_t e[] = {0x01}; cobs_case(in, 0, e, 1); }
    /* 254 non-zero bytes: one full block, no trailing empty block */
    for (k = 0; k < 254; k++) {
        in[k] = (uint8_t)(k + 1);
    }
    out[0] = 0xFF;
    memcpy(out + 1, in, 254);
    cobs_case(in, 254, out, 255);
    /* 255 bytes 01..FF */
    in[254] = 0xFF;
    out[255] = 0x02;
    out[256] = 0xFF;
    cobs_case(in, 255, out, 257);
    /* 254 non-zero then a zero */
    in[254] = 0x00;
    out[255] = 0x01;
    out[256] = 0x01;
    cobs_case(in, 255, out, 257);
    /* too small output is reported, not overrun */
    CHECK(esb_cobs_encode(in, 10, out, 5) == 0);
    /* invalid frames */
    { uint8_t bad[] = {0x05, 0x11, 0x22}; size_t n; CHECK(esb_cobs_decode(bad, 3, out, 10, &n) == ESB_ERR_COBS); }
    { uint8_t bad[] = {0x02, 0x11, 0x00}; size_t n; CHECK(esb_cobs_decode(bad, 3, out, 10, &n) == ESB_ERR_COBS); }
}

static void test_data_roundtrip(void)
{
    uint8_t payload[64];
    uint8_t wire[256];
    uint32_t dims[2] = {4, 2};
    esb_msg_t msg;
    size_t n, k;
    for (k = 0; k < sizeof payload; k++) {
        payload[k] = (uint8_t)(k * 37u);   /* contains zeros */
    }
    n = esb_encode_data(0xFFFFFFFFu, 0x0123456789ABCDEFull, ESB_KIND_RADAR_CIR, ESB_DTYPE_C64, 2, dims,
                        payload, sizeof payload, wire, sizeof wire);
    CHECK(n > 0 && n <= esb_frame_max_size(sizeof payload));
    CHECK(wire[n - 1] == 0);
    for (k = 0; k + 1 < n; k++) {
        CHECK(wire[k] != 0);
    }
    CHECK(esb_decode_frame(wire, n - 1, &msg) == ESB_OK);
    CHECK(msg.header.major == 1 && msg.header.minor == 0 && msg.header.header_len == 36);
    CHECK(msg.header.msg_type == ESB_MSG_DATA);
    CHECK(msg.header.sensor_kind == ESB_KIND_RADAR_CIR);
    CHECK(msg.header.dtype == ESB_DTYPE_C64 && msg.header.ndim == 2);
    CHECK(msg.header.dims[0] == 4 && msg.header.dims[1] == 2 && msg.header.dims[2] == 0);
    CHECK(msg.header.seq == 0xFFFFFFFFu);
    CHECK(msg.header.time_us == 0x0123456789ABCDEFull);
    CHECK(msg.payload_len == sizeof payload && memcmp(msg.payload, payload, sizeof payload) == 0);
    CHECK(esb_dtype_size(ESB_DTYPE_C64) == 8 && esb_dtype_size(77) == 0);
    /* too small a buffer */
    CHECK(esb_encode_data(1, 0, 1, ESB_DTYPE_C64, 2, dims, payload, sizeof payload, wire, 50) == 0);
}

static void test_corruption(void)
{
    uint8_t payload[40];
    uint8_t wire[256], copy[256];
    esb_msg_t msg;
    size_t n, byte;
    int bit, rejected = 0, total = 0;
    memset(payload, 0xA5, sizeof payload);
    n = esb_encode_request(ESB_MSG_PING, 9, payload, sizeof payload, wire, sizeof wire);
    CHECK(n > 0);
    /* every single-bit error in the frame body is rejected */
    for (byte = 0; byte + 1 < n; byte++) {
        for (bit = 0; bit < 8; bit++) {
            memcpy(copy, wire, n);
            copy[byte] ^= (uint8_t)(1u << bit);
            total++;
            if (esb_decode_frame(copy, n - 1, &msg) != ESB_OK) {
                rejected++;
            }
        }
    }
    CHECK(rejected == total);
    /* truncation */
    memcpy(copy, wire, n);
    CHECK(esb_decode_frame(copy, n / 2, &msg) != ESB_OK);
    memcpy(copy, wire, n);
    CHECK(esb_decode_frame(copy, 3, &msg) != ESB_OK);
}

static void test_version_mismatch(void)
{
    /* a hand-built 2.5 HELLO: only the invariant fields and the CRC can be read */
    uint8_t body[20], wire[40];
    esb_msg_t msg;
    size_t n;
    memset(body, 0x33, sizeof body);
    body[0] = 2;
    body[1] = 5;
    body[2] = 16;
    body[3] = ESB_MSG_HELLO;
    esb_put_u32(body + 8, 0x01020304u);
    esb_put_u32(body + 16, esb_crc32_update(0, body, 16));
    n = esb_cobs_encode(body, sizeof body, wire, sizeof wire);
    CHECK(esb_decode_frame(wire, n, &msg) == ESB_ERR_VERSION);
    CHECK(msg.header.major == 2 && msg.header.minor == 5);
    CHECK(msg.header.msg_type == ESB_MSG_HELLO && msg.header.seq == 0x01020304u);
}

static void test_newer_minor(void)
{
    /* a 1.3 message with a 44-byte header: the extra header bytes are skipped */
    uint8_t body[44 + 3 + 4], wire[80];
    esb_msg_t msg;
    size_t n;
    memset(body, 0, sizeof body);
    body[0] = 1;
    body[1] = 3;
    body[2] = 44;
    body[3] = ESB_MSG_PING;
    esb_put_u32(body + 8, 77);
    memset(body + 36, 0xEE, 8);   /* unknown trailing header fields */
    body[44] = 'a';
    body[45] = 'b';
    body[46] = 'c';
    esb_put_u32(body + 47, esb_crc32_update(0, body, 47));
    n = esb_cobs_encode(body, sizeof body, wire, sizeof wire);
    CHECK(esb_decode_frame(wire, n, &msg) == ESB_OK);
    CHECK(msg.header.minor == 3 && msg.header.seq == 77 && msg.header.msg_type == ESB_MSG_PING);
    CHECK(msg.payload_len == 3 && memcmp(msg.payload, "abc", 3) == 0);
}

static void test_ack_nak_status_info(void)
{
    uint8_t wire[512], rec[256];
    esb_msg_t msg;
    esb_status_t st = {1, 2, 3, 4, 5, 6, 7};
    esb_device_info_t info;
    size_t n;
    uint32_t dims[2] = {32, 32};
    n = esb_encode_status(3, 1000, &st, wire, sizeof wire);
    CHECK(esb_decode_frame(wire, n - 1, &msg) == ESB_OK);
    CHECK(msg.header.msg_type == ESB_MSG_STATUS && msg.payload_len == ESB_STATUS_LEN);
    CHECK(esb_get_u32(msg.payload + 8) == 3 && esb_get_u32(msg.payload + 24) == 7);

    n = esb_encode_nak(12, ESB_MSG_CONFIGURE, ESB_NAK_UNKNOWN_PROFILE, 5, "no such profile", wire, sizeof wire);
    CHECK(esb_decode_frame(wire, n - 1, &msg) == ESB_OK);
    CHECK(msg.header.msg_type == ESB_MSG_NAK && msg.header.seq == 12);
    CHECK(msg.payload[0] == ESB_MSG_CONFIGURE && msg.payload[1] == ESB_NAK_UNKNOWN_PROFILE);
    CHECK(msg.payload_len == 4 + 15 && memcmp(msg.payload + 4, "no such profile", 15) == 0);

    info.capabilities = ESB_CAP_STATUS | ESB_CAP_CONFIGURE;
    info.max_payload = 8192;
    info.frame_period_us = 25000;
    info.sensor_kind = ESB_KIND_RADAR_CIR;
    info.dtype = ESB_DTYPE_C64;
    info.ndim = 2;
    info.dims[0] = dims[0];
    info.dims[1] = dims[1];
    info.profile = "ad60";
    info.firmware = "emu";
    n = esb_write_device_info(&info, rec, sizeof rec);
    CHECK(n == 34 + 4 + 1 + 3);
    CHECK(esb_get_u32(rec + 8) == 25000 && rec[13] == ESB_DTYPE_C64 && esb_get_u32(rec + 20) == 32);
    CHECK(esb_get_u16(rec + 32) == 4 && memcmp(rec + 34, "ad60", 4) == 0 && rec[38] == 3);
    CHECK(esb_write_device_info(&info, rec, 10) == 0);
    n = esb_encode_ack(1, ESB_MSG_HELLO, 0, rec, 42, wire, sizeof wire);
    CHECK(esb_decode_frame(wire, n - 1, &msg) == ESB_OK);
    CHECK(msg.payload_len == 46 && msg.payload[0] == ESB_MSG_HELLO && memcmp(msg.payload + 4, rec, 42) == 0);
}

static void test_rx(void)
{
    uint8_t buf[64], wire[128];
    esb_rx_t rx;
    esb_msg_t msg;
    size_t n, k;
    int r = 0, completed = 0;
    const uint8_t garbage[] = {0x13, 0x37, 0x00, 0x42};
    esb_rx_init(&rx, buf, sizeof buf);
    for (k = 0; k < sizeof garbage; k++) {
        r = esb_rx_push(&rx, garbage[k]);
        if (r == 1) {
            CHECK(esb_decode_frame(rx.buf, rx.len, &msg) != ESB_OK);
            esb_rx_reset(&rx);
        }
    }
    esb_rx_push(&rx, 0);   /* the byte 0x42 above was the start of a bad candidate */
    esb_rx_reset(&rx);
    n = esb_encode_request(ESB_MSG_START, 5, NULL, 0, wire, sizeof wire);
    for (k = 0; k < n; k++) {
        r = esb_rx_push(&rx, wire[k]);
        if (r == 1) {
            completed++;
            CHECK(esb_decode_frame(rx.buf, rx.len, &msg) == ESB_OK);
            CHECK(msg.header.msg_type == ESB_MSG_START && msg.header.seq == 5);
            esb_rx_reset(&rx);
        }
    }
    CHECK(completed == 1);
    /* oversized candidate */
    esb_rx_init(&rx, buf, 8);
    for (k = 0; k < 20; k++) {
        CHECK(esb_rx_push(&rx, 0x55) == 0);
    }
    CHECK(esb_rx_push(&rx, 0) == -1);
    CHECK(rx.len == 0);
}

static void test_worked_example(void)
{
    /* PROTOCOL.md section 8: PING, request id 7, payload 01 02 00 */
    const uint8_t payload[] = {0x01, 0x02, 0x00};
    uint8_t wire[80], body[80];
    size_t n, body_len;
    n = esb_encode_request(ESB_MSG_PING, 7, payload, 3, wire, sizeof wire);
    CHECK(esb_cobs_decode(wire, n - 1, body, sizeof body, &body_len) == ESB_OK);
    CHECK(body_len == 43);
    CHECK(body[0] == 1 && body[1] == 0 && body[2] == 0x24 && body[3] == 0x05 && body[8] == 7);
    CHECK(memcmp(body + 36, payload, 3) == 0);
    CHECK(esb_get_u32(body + 39) == esb_crc32_update(0, body, 39));
    /* print the wire bytes so the Python tests can compare byte for byte */
    printf("worked-example:");
    for (body_len = 0; body_len < n; body_len++) {
        printf("%02x", wire[body_len]);
    }
    printf("\n");
}

int main(void)
{
    test_crc32();
    test_cobs();
    test_data_roundtrip();
    test_corruption();
    test_version_mismatch();
    test_newer_minor();
    test_ack_nak_status_info();
    test_rx();
    test_worked_example();
    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
