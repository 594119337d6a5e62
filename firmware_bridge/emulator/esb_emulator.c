/*
 * esb_emulator: a sensing device speaking the edgesense bridge protocol, for tests and demos.
 *
 * Built from the same portable core as firmware (../src), plus POSIX I/O around it: it serves one
 * host at a time on a pseudo-terminal (--pty), a TCP port on 127.0.0.1 (--tcp PORT, 0 picks one), an
 * inherited file descriptor (--fd N, e.g. one end of a socketpair; it exits when the peer closes),
 * or writes a free-running stream to stdout (--stdout). It streams frames of a built-in profile at the
 * profile's real rate (or as fast as possible with --fast), answers control messages (PROTOCOL.md
 * section 3) and injects faults on request (command-line flags or the FAULTS message).
 *
 * Payloads are deterministic so a host can check every byte: word k of frame seq (little-endian u32,
 * payload_len / 4 words) is fmix32(seq * 0x9E3779B1 + k * 0x85EBCA77 + seed) for integer payloads;
 * for float32 / complex64 payloads each float is ((w >> 8) - 2^23) / 2^23, exactly representable.
 * With --payload-file the payload of the frame with index i (seq - start_seq) is the i-th
 * frame-sized block of the file (wrapping around).
 *
 * Lines on stdout (except in --stdout mode) tell the caller where to connect:
 *   "PTY <path>" or "TCP <port>", and "READY".
 * With --log FILE every fault is recorded as "<seq> <kind>" (kind: drop, corrupt, truncate, garbage,
 * overflow), one per line, flushed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "esb.h"

#define MAX_PAYLOAD 65536u
#define TX_CAP (1u << 20)
#define RX_CAP 1024u

typedef struct {
    const char *name;
    uint8_t kind;
    uint8_t dtype;
    uint8_t ndim;
    uint32_t dims[ESB_MAX_NDIM];
    uint32_t period_us;
} profile_t;

/* The edgesense built-in profiles (edgesense/data/profiles), as this device knows them. */
static const profile_t PROFILES[] = {
    {"ad60", ESB_KIND_RADAR_CIR, ESB_DTYPE_C64, 2, {32, 32, 0, 0}, 25000},
    {"rdi32", ESB_KIND_RDI, ESB_DTYPE_F32, 3, {1, 32, 32, 0}, 25000},
    {"speaker-ref", ESB_KIND_SPEAKER_IV, ESB_DTYPE_F32, 2, {48, 2, 0, 0}, 1000},
};

typedef struct {
    uint32_t drop_ppm, corrupt_ppm, garbage_ppm, truncate_ppm;
    double ber;
    uint32_t stall_every_ms, stall_ms;
    uint32_t disconnect_after_frames, disconnect_ms;
} faults_t;

static struct {
    const profile_t *profile;
    uint32_t seed;
    uint32_t seq;
    uint32_t start_seq;
    int fast;
    int autostart;
    long max_frames;
    double duration_s;
    uint32_t status_ms;
    int proto_major, proto_minor, extra_header;
    uint32_t unknown_every;
    const char *payload_file;
    uint8_t *file_data;
    size_t file_len;
    FILE *log;
    faults_t faults;
    /* transport */
    int mode;   /* 0 pty, 1 tcp, 2 stdout, 3 inherited fd */
    int given_fd;
    const char *pty_link;
    int tcp_port;
    int listen_fd;
    int fd;      /* connection (pty master or TCP client), -1 if none */
    int slave_fd;
    /* state */
    int streaming;
    esb_status_t status;
    uint32_t status_seq;
    uint64_t t0_ns;
    uint64_t next_frame_ns, next_status_ns, stall_until_ns, next_stall_ns, link_down_until_ns;
    long frames_done;
    uint64_t rng;
    uint8_t tx[TX_CAP];
    size_t tx_head, tx_len;   /* linear buffer: bytes tx[tx_head .. tx_head+tx_len) */
    uint8_t rxbuf[RX_CAP];
    esb_rx_t rx;
} E;

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t device_us(void)
{
    return (now_ns() - E.t0_ns) / 1000u;
}

static uint32_t rng_u32(void)
{
    /* splitmix64 */
    uint64_t z = (E.rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static int chance_ppm(uint32_t ppm)
{
    return ppm > 0 && (rng_u32() % 1000000u) < ppm;
}

static uint32_t fmix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

static size_t payload_len(const profile_t *p)
{
    size_t n = esb_dtype_size(p->dtype);
    unsigned k;
    for (k = 0; k < p->ndim; k++) {
        n *= p->dims[k];
    }
    return n;
}

static void make_payload(uint32_t seq, uint8_t *out, size_t len)
{
    size_t k;
    if (E.file_data != NULL) {
        size_t frames = E.file_len / len;
        size_t index = (size_t)(uint32_t)(seq - E.start_seq) % frames;
        memcpy(out, E.file_data + index * len, len);
        return;
    }
    for (k = 0; k < len / 4; k++) {
        uint32_t w = fmix32(seq * 0x9E3779B1u + (uint32_t)k * 0x85EBCA77u + E.seed);
        if (E.profile->dtype == ESB_DTYPE_F32 || E.profile->dtype == ESB_DTYPE_C64) {
            float f = (float)((int32_t)(w >> 8) - 8388608) * (1.0f / 8388608.0f);
            memcpy(&w, &f, 4);
        }
        esb_put_u32(out + 4 * k, w);
    }
}

static void log_fault(uint32_t seq, const char *kind)
{
    if (E.log != NULL) {
        fprintf(E.log, "%u %s\n", seq, kind);
        fflush(E.log);
    }
}

/* Re-wrap a frame as another protocol version (for version-negotiation tests). */
static size_t rewrap(const uint8_t *wire, size_t n, uint8_t *out, size_t cap)
{
    static uint8_t body[MAX_PAYLOAD + 512];
    static uint8_t body2[MAX_PAYLOAD + 512];
    size_t blen = 0, b2 = 0;
    int k;
    esb_cobs_writer_t w;
    if (esb_cobs_decode(wire, n - 1, body, sizeof body, &blen) != ESB_OK || blen < ESB_HEADER_LEN + 4) {
        return 0;
    }
    memcpy(body2, body, ESB_HEADER_LEN);
    body2[0] = (uint8_t)E.proto_major;
    body2[1] = (uint8_t)E.proto_minor;
    body2[2] = (uint8_t)(ESB_HEADER_LEN + (unsigned)E.extra_header);
    b2 = ESB_HEADER_LEN;
    for (k = 0; k < E.extra_header; k++) {
        body2[b2++] = (uint8_t)(0xE0u + (unsigned)k);
    }
    memcpy(body2 + b2, body + ESB_HEADER_LEN, blen - ESB_HEADER_LEN - 4);
    b2 += blen - ESB_HEADER_LEN - 4;
    esb_put_u32(body2 + b2, esb_crc32_update(0, body2, b2));
    b2 += 4;
    esb_cobs_writer_init(&w, out, cap);
    esb_cobs_writer_put(&w, body2, b2);
    return esb_cobs_writer_finish(&w, 1);
}

static int versioned(void)
{
    return E.proto_major != (int)ESB_VERSION_MAJOR || E.proto_minor != (int)ESB_VERSION_MINOR || E.extra_header > 0;
}

/* Queue bytes for the link; returns 0 if the transmit buffer has no room (nothing is queued). */
static int tx_queue(const uint8_t *data, size_t n)
{
    if (E.tx_len + n > TX_CAP) {
        return 0;
    }
    if (E.tx_head + E.tx_len + n > TX_CAP) {
        memmove(E.tx, E.tx + E.tx_head, E.tx_len);
        E.tx_head = 0;
    }
    memcpy(E.tx + E.tx_head + E.tx_len, data, n);
    E.tx_len += n;
    return 1;
}

static int send_msg(const uint8_t *wire, size_t n)
{
    static uint8_t alt[MAX_PAYLOAD * 2];
    if (n == 0) {
        return 0;
    }
    if (versioned()) {
        n = rewrap(wire, n, alt, sizeof alt);
        wire = alt;
        if (n == 0) {
            return 0;
        }
    }
    return tx_queue(wire, n);
}

static void device_info(esb_device_info_t *info)
{
    unsigned k;
    info->capabilities = ESB_CAP_STATUS | ESB_CAP_CONFIGURE | ESB_CAP_FAULTS;
    info->max_payload = (uint32_t)payload_len(E.profile);
    info->frame_period_us = E.profile->period_us;
    info->sensor_kind = E.profile->kind;
    info->dtype = E.profile->dtype;
    info->ndim = E.profile->ndim;
    for (k = 0; k < ESB_MAX_NDIM; k++) {
        info->dims[k] = E.profile->dims[k];
    }
    info->profile = E.profile->name;
    info->firmware = "esb_emulator 1.0";
}

static void reply_ack(const esb_msg_t *m, const uint8_t *answer, size_t len)
{
    static uint8_t wire[MAX_PAYLOAD];
    send_msg(wire, esb_encode_ack(m->header.seq, m->header.msg_type, device_us(), answer, len, wire, sizeof wire));
}

static void reply_nak(uint32_t id, uint8_t type, uint8_t code, const char *text)
{
    static uint8_t wire[1024];
    E.status.last_error = code;
    send_msg(wire, esb_encode_nak(id, type, code, device_us(), text, wire, sizeof wire));
}

static void start_streaming(void)
{
    if (!E.streaming) {
        uint64_t now = now_ns();
        E.streaming = 1;
        E.next_frame_ns = now + (uint64_t)E.profile->period_us * 1000u;
        E.next_status_ns = now + (uint64_t)E.status_ms * 1000000u;
        if (E.faults.stall_every_ms > 0) {
            E.next_stall_ns = now + (uint64_t)E.faults.stall_every_ms * 1000000u;
        }
    }
}

static void handle_request(uint8_t *frame, size_t len)
{
    esb_msg_t m;
    esb_result_t r = esb_decode_frame(frame, len, &m);
    uint8_t answer[256];
    size_t n;
    if (r == ESB_ERR_VERSION || (r == ESB_OK && E.proto_major != (int)ESB_VERSION_MAJOR)) {
        /* a request of a foreign major version: only HELLO is answered (NAK version) */
        E.status.rx_unknown++;
        if (m.header.msg_type == ESB_MSG_HELLO) {
            reply_nak(m.header.seq, ESB_MSG_HELLO, ESB_NAK_VERSION, "protocol major version mismatch");
        }
        return;
    }
    if (r != ESB_OK) {
        E.status.rx_corrupt++;
        return;
    }
    switch (m.header.msg_type) {
    case ESB_MSG_HELLO: {
        esb_device_info_t info;
        device_info(&info);
        n = esb_write_device_info(&info, answer, sizeof answer);
        reply_ack(&m, answer, n);
        break;
    }
    case ESB_MSG_START:
        start_streaming();
        reply_ack(&m, NULL, 0);
        break;
    case ESB_MSG_STOP:
        E.streaming = 0;
        reply_ack(&m, NULL, 0);
        break;
    case ESB_MSG_CONFIGURE: {
        size_t k;
        const profile_t *found = NULL;
        if (E.streaming) {
            reply_nak(m.header.seq, m.header.msg_type, ESB_NAK_BUSY, "stop streaming before CONFIGURE");
            break;
        }
        for (k = 0; k < sizeof PROFILES / sizeof PROFILES[0]; k++) {
            if (strlen(PROFILES[k].name) == m.payload_len &&
                memcmp(PROFILES[k].name, m.payload, m.payload_len) == 0) {
                found = &PROFILES[k];
            }
        }
        if (found == NULL) {
            reply_nak(m.header.seq, m.header.msg_type, ESB_NAK_UNKNOWN_PROFILE, "unknown profile");
            break;
        }
        if (E.file_data != NULL && E.file_len < payload_len(found)) {
            reply_nak(m.header.seq, m.header.msg_type, ESB_NAK_UNSUPPORTED, "payload file too small");
            break;
        }
        E.profile = found;
        {
            esb_device_info_t info;
            device_info(&info);
            n = esb_write_device_info(&info, answer, sizeof answer);
            reply_ack(&m, answer, n);
        }
        break;
    }
    case ESB_MSG_PING:
        if (m.payload_len > 64) {
            reply_nak(m.header.seq, m.header.msg_type, ESB_NAK_MALFORMED, "ping payload longer than 64 bytes");
        } else {
            reply_ack(&m, m.payload, m.payload_len);
        }
        break;
    case ESB_MSG_GET_STATUS:
        E.status.uptime_ms = (uint32_t)(device_us() / 1000u);
        n = esb_write_status(&E.status, answer, sizeof answer);
        reply_ack(&m, answer, n);
        break;
    case ESB_MSG_FAULTS:
        if (m.payload_len < 24) {
            reply_nak(m.header.seq, m.header.msg_type, ESB_NAK_MALFORMED, "FAULTS needs 24 bytes");
            break;
        }
        E.faults.drop_ppm = esb_get_u32(m.payload);
        E.faults.corrupt_ppm = esb_get_u32(m.payload + 4);
        E.faults.garbage_ppm = esb_get_u32(m.payload + 8);
        E.faults.truncate_ppm = esb_get_u32(m.payload + 12);
        if (esb_get_u32(m.payload + 16) > 0) {
            E.stall_until_ns = now_ns() + (uint64_t)esb_get_u32(m.payload + 16) * 1000000u;
        }
        E.faults.disconnect_ms = esb_get_u32(m.payload + 20);
        if (E.faults.disconnect_ms > 0) {
            E.faults.disconnect_after_frames = (uint32_t)E.frames_done + 1u;
        }
        reply_ack(&m, NULL, 0);
        break;
    default:
        E.status.rx_unknown++;
        reply_nak(m.header.seq, m.header.msg_type, ESB_NAK_UNKNOWN_TYPE, "unknown message type");
        break;
    }
}

/* ---- transport ---- */

static void open_pty(void)
{
    char *name;
    struct termios tio;
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0 || grantpt(fd) != 0 || unlockpt(fd) != 0 || (name = ptsname(fd)) == NULL) {
        perror("esb_emulator: pty");
        exit(1);
    }
    /* hold the slave open and raw, so bytes pass unchanged and closing the host side is harmless */
    E.slave_fd = open(name, O_RDWR | O_NOCTTY);
    if (E.slave_fd < 0 || tcgetattr(E.slave_fd, &tio) != 0) {
        perror("esb_emulator: pty slave");
        exit(1);
    }
    cfmakeraw(&tio);
    tcsetattr(E.slave_fd, TCSANOW, &tio);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    E.fd = fd;
    if (E.pty_link != NULL) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", E.pty_link);
        unlink(tmp);
        if (symlink(name, tmp) != 0 || rename(tmp, E.pty_link) != 0) {
            perror("esb_emulator: pty link");
            exit(1);
        }
    }
    printf("PTY %s\n", E.pty_link != NULL ? E.pty_link : name);
    fflush(stdout);
}

static void open_listener(void)
{
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;
    int one = 1;
    E.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(E.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)E.tcp_port);
    if (bind(E.listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(E.listen_fd, 1) != 0) {
        perror("esb_emulator: tcp");
        exit(1);
    }
    getsockname(E.listen_fd, (struct sockaddr *)&addr, &alen);
    printf("TCP %d\n", ntohs(addr.sin_port));
    fflush(stdout);
}

static void drop_connection(int host_left)
{
    if (E.mode == 0) {
        close(E.fd);
        close(E.slave_fd);
        E.fd = -1;
        E.slave_fd = -1;
    } else if (E.mode == 1 && E.fd >= 0) {
        close(E.fd);
        E.fd = -1;
    }
    E.tx_head = 0;
    E.tx_len = 0;
    esb_rx_reset(&E.rx);
    if (host_left) {
        E.streaming = 0;   /* the host went away: stop, as PROTOCOL.md section 3 says */
    }
}

static void capture_frame(void)
{
    static uint8_t payload[MAX_PAYLOAD];
    static uint8_t wire[MAX_PAYLOAD * 2];
    uint8_t garbage[72];
    size_t plen = payload_len(E.profile), n;
    uint32_t seq = E.seq++;
    uint64_t now = now_ns();
    E.status.frames_captured++;
    E.frames_done++;
    if (E.fd < 0 || now < E.link_down_until_ns) {
        E.status.overflow_drops++;
        log_fault(seq, "overflow");
        return;
    }
    if (chance_ppm(E.faults.drop_ppm)) {
        log_fault(seq, "drop");
        return;
    }
    make_payload(seq, payload, plen);
    n = esb_encode_data(seq, device_us(), E.profile->kind, E.profile->dtype, E.profile->ndim, E.profile->dims,
                        payload, plen, wire, sizeof wire);
    if (versioned()) {
        static uint8_t alt[MAX_PAYLOAD * 2];
        n = rewrap(wire, n, alt, sizeof alt);
        memcpy(wire, alt, n);
    }
    if (chance_ppm(E.faults.truncate_ppm) && n > 3) {
        n = 1 + rng_u32() % (uint32_t)(n - 2);
        wire[n++] = 0;
        log_fault(seq, "truncate");
    }
    if (chance_ppm(E.faults.corrupt_ppm)) {
        size_t at = rng_u32() % (uint32_t)(n - 1);
        wire[at] ^= (uint8_t)(1u << (rng_u32() % 8u));
        log_fault(seq, "corrupt");
    } else if (E.faults.ber > 0) {
        size_t bit, bits = (n - 1) * 8;
        int hit = 0;
        for (bit = 0; bit < bits; bit++) {
            if ((double)rng_u32() / 4294967296.0 < E.faults.ber) {
                wire[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                hit = 1;
            }
        }
        if (hit) {
            log_fault(seq, "corrupt");
        }
    }
    if (chance_ppm(E.faults.garbage_ppm)) {
        size_t g = 1 + rng_u32() % 64u, k;
        for (k = 0; k < g; k++) {
            garbage[k] = (uint8_t)rng_u32();
        }
        garbage[g++] = 0;
        tx_queue(garbage, g);
        log_fault(seq, "garbage");
    }
    if (!tx_queue(wire, n)) {
        E.status.overflow_drops++;
        log_fault(seq, "overflow");
        return;
    }
    E.status.frames_sent++;
    if (E.unknown_every > 0 && E.frames_done % E.unknown_every == 0) {
        /* a message type this protocol version does not define, as a newer device would send */
        esb_header_t h;
        const uint8_t blob[5] = {1, 2, 3, 4, 5};
        memset(&h, 0, sizeof h);
        h.msg_type = 0x9F;
        h.seq = seq;
        h.time_us = device_us();
        send_msg(wire, esb_encode_frame(&h, blob, sizeof blob, NULL, 0, wire, sizeof wire));
    }
}

static void send_status(void)
{
    static uint8_t wire[256];
    E.status.uptime_ms = (uint32_t)(device_us() / 1000u);
    send_msg(wire, esb_encode_status(E.status_seq++, device_us(), &E.status, wire, sizeof wire));
}

static void usage(void)
{
    fprintf(stderr,
            "usage: esb_emulator (--pty [--pty-link PATH] | --tcp PORT | --fd N | --stdout) [--profile NAME]\n"
            "  [--seed N] [--start-seq N] [--payload-file F] [--fast] [--autostart] [--max-frames N]\n"
            "  [--duration S] [--status-ms N] [--log FILE] [--drop-rate P] [--corrupt-rate P] [--ber P]\n"
            "  [--garbage-rate P] [--truncate-rate P] [--stall-every-ms N --stall-ms N]\n"
            "  [--disconnect-after N --disconnect-ms N] [--proto-major N] [--proto-minor N]\n"
            "  [--extra-header N] [--unknown-every N]\n");
    exit(2);
}

static uint32_t ppm(const char *s)
{
    double p = atof(s);
    if (p < 0 || p > 1) {
        fprintf(stderr, "esb_emulator: a rate must be in [0, 1], got %s\n", s);
        exit(2);
    }
    return (uint32_t)(p * 1e6 + 0.5);
}

static void parse_args(int argc, char **argv)
{
    int i;
    E.profile = &PROFILES[0];
    E.mode = -1;
    E.max_frames = -1;
    E.status_ms = 1000;
    E.proto_major = (int)ESB_VERSION_MAJOR;
    E.proto_minor = (int)ESB_VERSION_MINOR;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && (v != NULL || (usage(), 0)) && ++i)
        if (strcmp(a, "--pty") == 0) {
            E.mode = 0;
        } else if (strcmp(a, "--stdout") == 0) {
            E.mode = 2;
        } else if (strcmp(a, "--fast") == 0) {
            E.fast = 1;
        } else if (strcmp(a, "--autostart") == 0) {
            E.autostart = 1;
        } else if (ARG("--fd")) {
            E.mode = 3;
            E.given_fd = atoi(v);
        } else if (ARG("--tcp")) {
            E.mode = 1;
            E.tcp_port = atoi(v);
        } else if (ARG("--pty-link")) {
            E.pty_link = v;
        } else if (ARG("--profile")) {
            size_t k;
            E.profile = NULL;
            for (k = 0; k < sizeof PROFILES / sizeof PROFILES[0]; k++) {
                if (strcmp(PROFILES[k].name, v) == 0) {
                    E.profile = &PROFILES[k];
                }
            }
            if (E.profile == NULL) {
                fprintf(stderr, "esb_emulator: unknown profile %s (ad60, rdi32, speaker-ref)\n", v);
                exit(2);
            }
        } else if (ARG("--seed")) {
            E.seed = (uint32_t)strtoul(v, NULL, 0);
        } else if (ARG("--start-seq")) {
            E.start_seq = (uint32_t)strtoul(v, NULL, 0);
        } else if (ARG("--payload-file")) {
            E.payload_file = v;
        } else if (ARG("--max-frames")) {
            E.max_frames = atol(v);
        } else if (ARG("--duration")) {
            E.duration_s = atof(v);
        } else if (ARG("--status-ms")) {
            E.status_ms = (uint32_t)atol(v);
        } else if (ARG("--log")) {
            E.log = fopen(v, "w");
            if (E.log == NULL) {
                perror("esb_emulator: --log");
                exit(2);
            }
        } else if (ARG("--drop-rate")) {
            E.faults.drop_ppm = ppm(v);
        } else if (ARG("--corrupt-rate")) {
            E.faults.corrupt_ppm = ppm(v);
        } else if (ARG("--ber")) {
            E.faults.ber = atof(v);
        } else if (ARG("--garbage-rate")) {
            E.faults.garbage_ppm = ppm(v);
        } else if (ARG("--truncate-rate")) {
            E.faults.truncate_ppm = ppm(v);
        } else if (ARG("--stall-every-ms")) {
            E.faults.stall_every_ms = (uint32_t)atol(v);
        } else if (ARG("--stall-ms")) {
            E.faults.stall_ms = (uint32_t)atol(v);
        } else if (ARG("--disconnect-after")) {
            E.faults.disconnect_after_frames = (uint32_t)atol(v);
        } else if (ARG("--disconnect-ms")) {
            E.faults.disconnect_ms = (uint32_t)atol(v);
        } else if (ARG("--proto-major")) {
            E.proto_major = atoi(v);
        } else if (ARG("--proto-minor")) {
            E.proto_minor = atoi(v);
        } else if (ARG("--extra-header")) {
            E.extra_header = atoi(v);
            if (E.extra_header < 0 || E.extra_header > 200) {
                usage();
            }
        } else if (ARG("--unknown-every")) {
            E.unknown_every = (uint32_t)atol(v);
        } else {
            usage();
        }
#undef ARG
    }
    if (E.mode < 0) {
        usage();
    }
    E.seq = E.start_seq;
}

static void load_payload_file(void)
{
    FILE *f;
    long len;
    if (E.payload_file == NULL) {
        return;
    }
    f = fopen(E.payload_file, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0) {
        fprintf(stderr, "esb_emulator: cannot read payload file %s\n", E.payload_file);
        exit(2);
    }
    rewind(f);
    E.file_data = malloc((size_t)len);   /* the emulator is a host program; the core never allocates */
    if (E.file_data == NULL || fread(E.file_data, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "esb_emulator: cannot read payload file %s\n", E.payload_file);
        exit(2);
    }
    fclose(f);
    E.file_len = (size_t)len;
    if (E.file_len < payload_len(E.profile)) {
        fprintf(stderr, "esb_emulator: payload file smaller than one frame (%zu bytes)\n", payload_len(E.profile));
        exit(2);
    }
}

static void write_all_stdout(void)
{
    while (E.tx_len > 0) {
        ssize_t w = write(1, E.tx + E.tx_head, E.tx_len);
        if (w <= 0) {
            if (errno == EINTR) {
                continue;
            }
            exit(0);
        }
        E.tx_head += (size_t)w;
        E.tx_len -= (size_t)w;
    }
    E.tx_head = 0;
}

static int finished(void)
{
    if (g_stop) {
        return 1;
    }
    if (E.max_frames >= 0 && E.frames_done >= E.max_frames) {
        return 1;
    }
    if (E.duration_s > 0 && (double)(now_ns() - E.t0_ns) / 1e9 >= E.duration_s) {
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    parse_args(argc, argv);
    load_payload_file();
    E.t0_ns = now_ns();
    E.rng = 0x5EEDull ^ ((uint64_t)E.seed << 20);
    E.fd = -1;
    E.slave_fd = -1;
    E.listen_fd = -1;
    esb_rx_init(&E.rx, E.rxbuf, sizeof E.rxbuf);

    if (E.mode == 2) {
        /* free-running stream to stdout, no control channel */
        E.fd = 1;
        start_streaming();
        while (!finished()) {
            if (!E.fast) {
                uint64_t now = now_ns();
                if (now < E.next_frame_ns) {
                    struct timespec ts;
                    uint64_t d = E.next_frame_ns - now;
                    ts.tv_sec = (time_t)(d / 1000000000u);
                    ts.tv_nsec = (long)(d % 1000000000u);
                    nanosleep(&ts, NULL);
                }
                E.next_frame_ns += (uint64_t)E.profile->period_us * 1000u;
            }
            capture_frame();
            write_all_stdout();
        }
        return 0;
    }

    if (E.mode == 0) {
        open_pty();
    } else if (E.mode == 1) {
        open_listener();
    } else {
        E.fd = E.given_fd;
        fcntl(E.fd, F_SETFL, fcntl(E.fd, F_GETFL) | O_NONBLOCK);
    }
    if (E.autostart) {
        start_streaming();
    }
    printf("READY\n");
    fflush(stdout);

    while (!finished()) {
        struct pollfd pfd[2];
        int nfds = 0, timeout_ms = 50, rc;
        uint64_t now = now_ns();

        /* reconnect after a link fault */
        if (E.fd < 0 && now >= E.link_down_until_ns) {
            if (E.mode == 0) {
                open_pty();
            }
        }
        if (E.fd < 0 && E.mode == 1 && now >= E.link_down_until_ns) {
            pfd[nfds].fd = E.listen_fd;
            pfd[nfds].events = POLLIN;
            nfds++;
        }
        if (E.fd >= 0) {
            pfd[nfds].fd = E.fd;
            pfd[nfds].events = POLLIN;
            if (E.tx_len > 0 && now >= E.stall_until_ns) {
                pfd[nfds].events |= POLLOUT;
            }
            nfds++;
        }
        if (E.streaming) {
            uint64_t due = E.fast ? now : E.next_frame_ns;
            int ms = due > now ? (int)((due - now) / 1000000u) : 0;
            if (ms < timeout_ms) {
                timeout_ms = ms;
            }
        }
        if (E.stall_until_ns > now && E.tx_len > 0) {
            int ms = (int)((E.stall_until_ns - now) / 1000000u) + 1;
            if (ms < timeout_ms) {
                timeout_ms = ms;
            }
        }
        rc = poll(pfd, (nfds_t)nfds, timeout_ms);
        if (rc < 0 && errno != EINTR) {
            perror("esb_emulator: poll");
            return 1;
        }
        {
            int k;
            for (k = 0; rc > 0 && k < nfds; k++) {
                if (pfd[k].fd == E.listen_fd && (pfd[k].revents & POLLIN)) {
                    int c = accept(E.listen_fd, NULL, NULL);
                    if (c >= 0) {
                        int one = 1;
                        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                        fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
                        E.fd = c;
                        E.tx_head = 0;
                        E.tx_len = 0;
                    }
                } else if (pfd[k].fd == E.fd && E.fd >= 0) {
                    if (pfd[k].revents & POLLIN) {
                        uint8_t buf[4096];
                        ssize_t got = read(E.fd, buf, sizeof buf);
                        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                            if (E.mode == 1) {
                                drop_connection(1);
                                continue;
                            }
                            if (E.mode == 3) {
                                g_stop = 1;   /* the peer closed its end */
                                break;
                            }
                        } else if (got > 0) {
                            ssize_t j;
                            for (j = 0; j < got; j++) {
                                int r = esb_rx_push(&E.rx, buf[j]);
                                if (r == 1) {
                                    handle_request(E.rx.buf, E.rx.len);
                                    esb_rx_reset(&E.rx);
                                } else if (r == -1) {
                                    E.status.rx_corrupt++;
                                }
                            }
                        }
                    } else if ((pfd[k].revents & (POLLHUP | POLLERR)) && E.mode == 1) {
                        drop_connection(1);
                        continue;
                    }
                    if ((pfd[k].revents & POLLOUT) && E.tx_len > 0) {
                        ssize_t w = write(E.fd, E.tx + E.tx_head, E.tx_len);
                        if (w > 0) {
                            E.tx_head += (size_t)w;
                            E.tx_len -= (size_t)w;
                            if (E.tx_len == 0) {
                                E.tx_head = 0;
                            }
                        } else if (w < 0 && errno != EAGAIN && errno != EINTR && E.mode == 1) {
                            drop_connection(1);
                        }
                    }
                }
            }
        }
        now = now_ns();
        if (E.faults.stall_every_ms > 0 && E.streaming && now >= E.next_stall_ns) {
            E.stall_until_ns = now + (uint64_t)E.faults.stall_ms * 1000000u;
            E.next_stall_ns = now + (uint64_t)E.faults.stall_every_ms * 1000000u;
        }
        while (E.streaming && !finished() && (E.fast ? 1 : now >= E.next_frame_ns)) {
            capture_frame();
            E.next_frame_ns += (uint64_t)E.profile->period_us * 1000u;
            if (E.faults.disconnect_after_frames > 0 && E.frames_done == (long)E.faults.disconnect_after_frames) {
                drop_connection(0);
                E.link_down_until_ns = now_ns() + (uint64_t)E.faults.disconnect_ms * 1000000u;
                E.faults.disconnect_after_frames = 0;
            }
            if (E.fast) {
                break;
            }
        }
        if (E.streaming && E.status_ms > 0 && now >= E.next_status_ns && E.fd >= 0) {
            send_status();
            E.next_status_ns = now + (uint64_t)E.status_ms * 1000000u;
        }
    }
    /* flush what is queued (best effort, 1 s) */
    {
        uint64_t until = now_ns() + 1000000000ull;
        while (E.fd >= 0 && E.tx_len > 0 && now_ns() < until) {
            ssize_t w = write(E.fd, E.tx + E.tx_head, E.tx_len);
            if (w > 0) {
                E.tx_head += (size_t)w;
                E.tx_len -= (size_t)w;
            } else {
                usleep(1000);
            }
        }
    }
    return 0;
}
