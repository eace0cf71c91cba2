/* A narrow window onto ISA-L's igzip inflater, so the Rust side needs no knowledge of the
 * layout of `struct inflate_state` (which changes between ISA-L releases). */
#include <stdint.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

struct inflate_state *cbtools_isal_new(void)
{
	struct inflate_state *s = malloc(sizeof *s);
	if (s != NULL)
		isal_inflate_init(s);
	return s;
}

void cbtools_isal_free(struct inflate_state *s)
{
	free(s);
}

/* Starts a new stream; `wrapper` is ISAL_ZLIB (3: header parsed, checksum verified) or
 * ISAL_GZIP_NO_HDR_VER (6: a gzip member's body after its header, which the caller parsed for
 * its FEXTRA marks; CRC-32 and length verified). */
void cbtools_isal_reset(struct inflate_state *s, uint32_t wrapper)
{
	isal_inflate_reset(s);
	s->crc_flag = wrapper;
}

/* One step. Returns ISA-L's status; `*done` is 1 once the stream and its trailer are read (the
 * input past it is left unconsumed, for the next member). */
int cbtools_isal_inflate(struct inflate_state *s, const uint8_t *in, uint32_t in_len,
			 uint32_t *consumed, uint8_t *out, uint32_t out_len,
			 uint32_t *produced, int *done)
{
	int rc;

	s->next_in = (uint8_t *) in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	rc = isal_inflate(s);
	*consumed = in_len - s->avail_in;
	*produced = out_len - s->avail_out;
	*done = s->block_state == ISAL_BLOCK_FINISH;
	return rc;
}
