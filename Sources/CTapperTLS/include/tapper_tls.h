// TLS for the gateway's reactors, on the system's OpenSSL (Debian's libssl: what nginx and
// HAProxy link). Only glue lives here: OpenSSL's macros (SNI and ALPN callbacks, modes and
// options) are not visible to Swift, and SSL_get_error's cases fold into a few return codes
// the reactor switches on. No cryptography is done here, OpenSSL does all of it.
#ifndef TAPPER_TLS_H
#define TAPPER_TLS_H
#include <stddef.h>
#include <stdint.h>

typedef struct tapper_tls_ctx tapper_tls_ctx;  // one certificate chain and key (an SSL_CTX)
typedef struct tapper_tls_set tapper_tls_set;  // the contexts of one listener, chosen by SNI
typedef struct tapper_tls_conn tapper_tls_conn;  // one connection (an SSL)

// What tapper_tls_read / tapper_tls_write / tapper_tls_handshake return besides a byte count.
enum {
    TAPPER_TLS_CLOSED = 0,        // the peer ended the stream (close_notify, or EOF)
    TAPPER_TLS_WANT_READ = -1,    // wait for input, then call again
    TAPPER_TLS_WANT_WRITE = -2,   // wait until the socket takes output, then call again
    TAPPER_TLS_ERROR = -3,        // protocol or socket error: close the connection
};

// Loads a PEM certificate chain (leaf first) and its private key into a server context:
// TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, no renegotiation or compression,
// partial writes. NULL on failure, with a message in `error`.
tapper_tls_ctx *tapper_tls_ctx_new(const char *cert_file, const char *key_file, char *error, size_t error_len);
void tapper_tls_ctx_free(tapper_tls_ctx *ctx);
// The names the leaf certificate is valid for (subjectAltName DNS entries, else the subject
// CN), comma separated, and its notAfter as seconds since 1970. Returns the names' length.
size_t tapper_tls_ctx_names(tapper_tls_ctx *ctx, char *out, size_t out_len, int64_t *not_after);

// A listener's contexts: the first is the default, the others are picked by SNI when their
// certificate is valid for the requested name (OpenSSL's X509_check_host: wildcards included).
// ALPN offers "h2" (when allow_h2) and "http/1.1". The set takes ownership of the contexts.
tapper_tls_set *tapper_tls_set_new(tapper_tls_ctx **ctxs, int count, int allow_h2);
void tapper_tls_set_free(tapper_tls_set *set);

// A server connection on the accepted socket `fd` (the handshake runs on the first read or
// write). The set must outlive the handshake.
tapper_tls_conn *tapper_tls_conn_new(tapper_tls_set *set, int fd);
void tapper_tls_conn_free(tapper_tls_conn *conn);
// ALPN chose "h2" (valid once the handshake is done: after the first bytes were read).
int tapper_tls_alpn_is_h2(tapper_tls_conn *conn);
int tapper_tls_read(tapper_tls_conn *conn, void *buf, int len);
int tapper_tls_write(tapper_tls_conn *conn, const void *buf, int len);
// Sends close_notify if it can without blocking (best effort; the socket closes next).
void tapper_tls_shutdown(tapper_tls_conn *conn);
#endif
