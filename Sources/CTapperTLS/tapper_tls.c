#include "tapper_tls.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tapper_tls_set {
    SSL_CTX **ctxs;
    int count;
    int allow_h2;
};

// Mozilla's "intermediate" TLS 1.2 suites (ECDHE, AEAD); TLS 1.3 keeps OpenSSL's defaults.
static const char *tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static void last_error(const char *what, const char *file, char *error, size_t error_len) {
    unsigned long e = ERR_peek_last_error();
    char reason[256] = "";
    if (e != 0) ERR_error_string_n(e, reason, sizeof reason);
    snprintf(error, error_len, "%s '%s'%s%s", what, file, e != 0 ? ": " : "", reason);
    ERR_clear_error();
}

tapper_tls_ctx *tapper_tls_ctx_new(const char *cert_file, const char *key_file, char *error, size_t error_len) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        last_error("cannot create a TLS context for", cert_file, error, error_len);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Partial writes: SSL_write returns once a record is out, like write(2); the queue keeps
    // the rest and may offer it again from another address (its bytes unchanged).
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // One read(2) brings as many records as the socket holds, not a header then a body.
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        last_error("cannot set the ciphers for", cert_file, error, error_len);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        last_error("cannot load the certificate chain", cert_file, error, error_len);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            last_error("the private key does not match the certificate in", cert_file, error, error_len);
        else
            last_error("cannot load the private key", key_file, error, error_len);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        last_error("the private key does not match the certificate in", cert_file, error, error_len);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return (tapper_tls_ctx *)ctx;
}

void tapper_tls_ctx_free(tapper_tls_ctx *ctx) { SSL_CTX_free((SSL_CTX *)ctx); }

static void append(char *out, size_t out_len, size_t *used, const unsigned char *s, int n) {
    if (*used > 0 && *used + 1 < out_len) out[(*used)++] = ',';
    for (int i = 0; i < n && *used + 1 < out_len; i++) out[(*used)++] = (char)s[i];
    if (out_len > 0) out[*used < out_len ? *used : out_len - 1] = 0;
}

size_t tapper_tls_ctx_names(tapper_tls_ctx *ctx, char *out, size_t out_len, int64_t *not_after) {
    size_t used = 0;
    if (out_len > 0) out[0] = 0;
    *not_after = 0;
    X509 *cert = SSL_CTX_get0_certificate((SSL_CTX *)ctx);
    if (cert == NULL) return 0;
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) *not_after = (int64_t)timegm(&tm);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names != NULL) {
        for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
            GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
            if (name->type == GEN_DNS)
                append(out, out_len, &used, ASN1_STRING_get0_data(name->d.dNSName), ASN1_STRING_length(name->d.dNSName));
        }
        GENERAL_NAMES_free(names);
    }
    if (used == 0) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
        if (n > 0) append(out, out_len, &used, (const unsigned char *)cn, n);
    }
    ERR_clear_error();
    return used;
}

static int on_server_name(SSL *ssl, int *alert, void *arg) {
    (void)alert;
    tapper_tls_set *set = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || set->count < 2) return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < set->count; i++) {
        X509 *cert = SSL_CTX_get0_certificate(set->ctxs[i]);
        if (cert != NULL && X509_check_host(cert, name, 0, 0, NULL) == 1) {
            if (i > 0) SSL_set_SSL_CTX(ssl, set->ctxs[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    ERR_clear_error();
    return SSL_TLSEXT_ERR_OK;  // no match: the default certificate (what nginx does too)
}

static const unsigned char alpn_h2[] = {2, 'h', '2'};
static const unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    tapper_tls_set *set = arg;
    unsigned char *selected = NULL;
    if (set->allow_h2 &&
        SSL_select_next_proto(&selected, outlen, alpn_h2, sizeof alpn_h2, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    if (SSL_select_next_proto(&selected, outlen, alpn_http11, sizeof alpn_http11, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    // Nothing in common (a client offering only protocols the gateway does not speak): go on
    // without ALPN, as HTTP/1.1.
    return SSL_TLSEXT_ERR_NOACK;
}

tapper_tls_set *tapper_tls_set_new(tapper_tls_ctx **ctxs, int count, int allow_h2) {
    if (count < 1) return NULL;
    tapper_tls_set *set = calloc(1, sizeof *set);
    if (set == NULL) return NULL;
    set->ctxs = calloc((size_t)count, sizeof(SSL_CTX *));
    if (set->ctxs == NULL) {
        free(set);
        return NULL;
    }
    set->count = count;
    set->allow_h2 = allow_h2;
    for (int i = 0; i < count; i++) {
        set->ctxs[i] = (SSL_CTX *)ctxs[i];
        // Every context: a connection switched to it by SNI keeps its ALPN choice.
        SSL_CTX_set_alpn_select_cb(set->ctxs[i], on_alpn, set);
    }
    SSL_CTX_set_tlsext_servername_callback(set->ctxs[0], on_server_name);
    SSL_CTX_set_tlsext_servername_arg(set->ctxs[0], set);
    return set;
}

void tapper_tls_set_free(tapper_tls_set *set) {
    if (set == NULL) return;
    for (int i = 0; i < set->count; i++) SSL_CTX_free(set->ctxs[i]);
    free(set->ctxs);
    free(set);
}

tapper_tls_conn *tapper_tls_conn_new(tapper_tls_set *set, int fd) {
    SSL *ssl = SSL_new(set->ctxs[0]);
    if (ssl == NULL) {
        ERR_clear_error();
        return NULL;
    }
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return (tapper_tls_conn *)ssl;
}

void tapper_tls_conn_free(tapper_tls_conn *conn) { SSL_free((SSL *)conn); }

int tapper_tls_alpn_is_h2(tapper_tls_conn *conn) {
    const unsigned char *proto = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected((SSL *)conn, &proto, &len);
    return len == 2 && proto[0] == 'h' && proto[1] == '2';
}

static int outcome(SSL *ssl, int r) {
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return TAPPER_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TAPPER_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TAPPER_TLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        // EOF without close_notify (OpenSSL 3 reports it as SSL_ERROR_SSL with
        // SSL_R_UNEXPECTED_EOF_WHILE_READING unless SSL_OP_IGNORE_UNEXPECTED_EOF) or a reset.
        if (errno == 0 && ERR_peek_error() == 0) return TAPPER_TLS_CLOSED;
        ERR_clear_error();
        return TAPPER_TLS_ERROR;
    case SSL_ERROR_SSL: {
        unsigned long e = ERR_peek_error();
        ERR_clear_error();
        if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return TAPPER_TLS_CLOSED;
        return TAPPER_TLS_ERROR;
    }
    default:
        ERR_clear_error();
        return TAPPER_TLS_ERROR;
    }
}

int tapper_tls_read(tapper_tls_conn *conn, void *buf, int len) {
    SSL *ssl = (SSL *)conn;
    errno = 0;
    int r = SSL_read(ssl, buf, len);
    return r > 0 ? r : outcome(ssl, r);
}

int tapper_tls_write(tapper_tls_conn *conn, const void *buf, int len) {
    SSL *ssl = (SSL *)conn;
    errno = 0;
    int r = SSL_write(ssl, buf, len);
    return r > 0 ? r : outcome(ssl, r);
}

void tapper_tls_shutdown(tapper_tls_conn *conn) {
    SSL *ssl = (SSL *)conn;
    if (SSL_is_init_finished(ssl)) (void)SSL_shutdown(ssl);
    ERR_clear_error();
}
