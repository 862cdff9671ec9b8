// All of CTapperH2 is in its header (inline accessors for nghttp2's frame union).
#include "tapper_h2.h"
