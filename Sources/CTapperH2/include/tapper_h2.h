// HTTP/2 for the gateway's client connections on Debian's libnghttp2 (what curl and Apache
// use): framing, HPACK, flow control and the protocol's checks are nghttp2's. The gateway's
// reactors drive it in memory (nghttp2_session_mem_recv / mem_send); nothing here does I/O.
#ifndef TAPPER_H2_H
#define TAPPER_H2_H
#include <nghttp2/nghttp2.h>

// The frame's stream id, type and flags (nghttp2_frame is a union Swift reads clumsily).
static inline int32_t tapper_h2_frame_stream(const nghttp2_frame *frame) { return frame->hd.stream_id; }
static inline uint8_t tapper_h2_frame_type(const nghttp2_frame *frame) { return frame->hd.type; }
static inline uint8_t tapper_h2_frame_flags(const nghttp2_frame *frame) { return frame->hd.flags; }
// For a HEADERS frame: its category (request, response, push or trailers).
static inline int tapper_h2_headers_category(const nghttp2_frame *frame) { return (int)frame->headers.cat; }
#endif
