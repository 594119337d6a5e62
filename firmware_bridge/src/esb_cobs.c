/* Consistent Overhead Byte Stuffing (Cheshire and Baker, IEEE/ACM ToN 7(2), 1999). */
#include "esb.h"

size_t esb_cobs_max_encoded(size_t len)
{
    return len + len / 254u + 1u;
}

void esb_cobs_writer_init(esb_cobs_writer_t *w, uint8_t *out, size_t cap)
{
    w->out = out;
    w->cap = cap;
    w->pos = 0;
    w->code_pos = 0;
    w->code = 1;
    w->block_open = 0;
    w->full = 0;
}

static int open_block(esb_cobs_writer_t *w)
{
    if (w->pos >= w->cap) {
        w->full = 1;
        return 0;
    }
    w->code_pos = w->pos++;
    w->code = 1;
    w->block_open = 1;
    return 1;
}

void esb_cobs_writer_put(esb_cobs_writer_t *w, const uint8_t *data, size_t len)
{
    size_t i;
    if (len > 0 && w->pos == 0 && !w->block_open && !w->full) {
        open_block(w);
    }
    for (i = 0; i < len && !w->full; i++) {
        if (!w->block_open && !open_block(w)) {
            return;
        }
        if (data[i] == 0) {
            w->out[w->code_pos] = w->code;
            w->block_open = 0;
            if (!open_block(w)) {
                return;
            }
        } else {
            if (w->pos >= w->cap) {
                w->full = 1;
                return;
            }
            w->out[w->pos++] = data[i];
            if (++w->code == 0xFFu) {
                w->out[w->code_pos] = w->code;
                w->block_open = 0;   /* the next block opens lazily: no empty block at the end */
            }
        }
    }
}

size_t esb_cobs_writer_finish(esb_cobs_writer_t *w, int with_delimiter)
{
    if (w->pos == 0 && !w->full) {
        open_block(w);       /* empty input encodes as a single 0x01 */
    }
    if (w->full) {
        return 0;
    }
    if (w->block_open) {
        w->out[w->code_pos] = w->code;
        w->block_open = 0;
    }
    if (with_delimiter) {
        if (w->pos >= w->cap) {
            return 0;
        }
        w->out[w->pos++] = 0;
    }
    return w->pos;
}

size_t esb_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap)
{
    esb_cobs_writer_t w;
    esb_cobs_writer_init(&w, out, out_cap);
    esb_cobs_writer_put(&w, in, len);
    return esb_cobs_writer_finish(&w, 0);
}

esb_result_t esb_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    size_t i = 0, o = 0;
    while (i < len) {
        size_t code = in[i];
        size_t end = i + code;
        size_t k;
        if (code == 0 || end > len) {
            return ESB_ERR_COBS;
        }
        if (o + (code - 1) > out_cap) {
            return ESB_ERR_ROOM;
        }
        for (k = i + 1; k < end; k++) {
            if (in[k] == 0) {
                return ESB_ERR_COBS;
            }
            out[o++] = in[k];   /* o < k always holds, so in-place decoding is safe */
        }
        i = end;
        if (code != 0xFFu && i < len) {
            if (o >= out_cap) {
                return ESB_ERR_ROOM;
            }
            out[o++] = 0;
        }
    }
    *out_len = o;
    return ESB_OK;
}
