/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3_sign.c - SHA-256 and the URL, headers and SigV4 options of one S3
 * request (see s3_sign.h).
 */
#include "s3_sign.h"
#include <stdlib.h>
#include <string.h>

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------ */

/* First 32 bits of the fractional parts of the cube roots of the first 64
 * primes. */
static const uint32_t sha_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u,
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void s3_sha256_init(struct s3_sha256 *c)
{
    /* First 32 bits of the fractional parts of the square roots of the
     * first 8 primes. */
    static const uint32_t iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(c->h, iv, sizeof(iv));
    c->total = 0;
    c->used = 0;
}

void s3_sha256_update(struct s3_sha256 *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->total += len;
    if (c->used) {
        size_t n = 64 - c->used < len ? 64 - c->used : len;
        memcpy(c->block + c->used, p, n);
        c->used += n;
        p += n;
        len -= n;
        if (c->used < 64)
            return;
        sha_block(c->h, c->block);
        c->used = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        sha_block(c->h, p);
    memcpy(c->block, p, len);
    c->used = len;
}

void s3_sha256_final(struct s3_sha256 *c, uint8_t out[S3_SHA256_BYTES])
{
    uint64_t bits = c->total * 8;
    c->block[c->used++] = 0x80;
    if (c->used > 56) {
        memset(c->block + c->used, 0, 64 - c->used);
        sha_block(c->h, c->block);
        c->used = 0;
    }
    memset(c->block + c->used, 0, 56 - c->used);
    for (int i = 0; i < 8; i++)
        c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_block(c->h, c->block);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void s3_sha256_hex(const void *data, size_t len, char out[S3_SHA256_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    struct s3_sha256 c;
    uint8_t d[S3_SHA256_BYTES];
    s3_sha256_init(&c);
    s3_sha256_update(&c, data, len);
    s3_sha256_final(&c, d);
    for (int i = 0; i < S3_SHA256_BYTES; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[S3_SHA256_HEX] = '\0';
}

/* ---- requests ------------------------------------------------------------ */

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int s3_uri_encode(gd_buf *out, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = gd_buf_reserve(out, len * 3);
    if (rc < 0)
        return rc;
    char *d = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int s3_endpoint_default(gd_buf *out, const char *region)
{
    return gd_buf_printf(out, "https://s3.%s.amazonaws.com", region);
}

/* The bucket's base URL into @out: "scheme://host/bucket" (path-style) or
 * "scheme://bucket.host" (virtual-hosted), no trailing slash. */
static int base_url(gd_buf *out, const struct s3_target *t)
{
    gd_buf ep = {0};
    int rc = t->endpoint ? gd_buf_puts(&ep, t->endpoint) : s3_endpoint_default(&ep, t->region);
    if (rc < 0)
        goto out_free;
    while (ep.len && ep.data[ep.len - 1] == '/')
        ep.data[--ep.len] = '\0';
    const char *host = strstr(ep.data, "://");
    if (!host || !host[3] || host[3] == '/') {
        rc = GD_EINVAL;
        goto out_free;
    }
    host += 3;
    if (t->path_style) {
        rc = gd_buf_append(out, ep.data, ep.len);
        if (rc == 0)
            rc = gd_buf_puts(out, "/");
        if (rc == 0)
            rc = s3_uri_encode(out, t->bucket, strlen(t->bucket), false);
    } else {
        rc = gd_buf_append(out, ep.data, (size_t)(host - ep.data));
        if (rc == 0)
            rc = gd_buf_printf(out, "%s.%s", t->bucket, host);
    }
out_free:
    gd_buf_free(&ep);
    return rc;
}

static int add_header(struct curl_slist **h, const char *fmt, const char *value)
{
    gd_buf line = {0};
    int rc = gd_buf_printf(&line, fmt, value);
    struct curl_slist *t = rc == 0 ? curl_slist_append(*h, line.data) : NULL;
    gd_buf_free(&line);
    if (!t)
        return GD_ENOMEM;
    *h = t;
    return 0;
}

int s3_request_build(struct s3_request *r, const struct s3_target *t, const char *key,
                     const char *query, const void *payload, size_t len, const char *payload_sha256,
                     const char *content_type)
{
    s3_request_free(r);
    if (!t->bucket || !t->bucket[0] || !t->region || !t->region[0])
        return GD_EINVAL;
    gd_buf url = {0}, prov = {0};
    int rc = base_url(&url, t);
    if (rc == 0)
        rc = gd_buf_puts(&url, "/");
    if (rc == 0 && key)
        rc = s3_uri_encode(&url, key, strlen(key), true);
    if (rc < 0)
        goto out_free;
    r->shown = strdup(url.data);
    if (!r->shown) {
        rc = GD_ENOMEM;
        goto out_free;
    }
    if (query && query[0])
        rc = gd_buf_printf(&url, "?%s", query);
    if (rc == 0)
        rc = gd_buf_printf(&prov, "aws:amz:%s:s3", t->region);
    if (rc < 0)
        goto out_free;
    r->url = url.data;
    r->provider = prov.data;
    url = (gd_buf){0};
    prov = (gd_buf){0};
    r->user = t->access_key;
    r->secret = t->secret_key;

    if (payload_sha256 && strlen(payload_sha256) == S3_SHA256_HEX)
        memcpy(r->sha256, payload_sha256, S3_SHA256_HEX + 1);
    else
        s3_sha256_hex(payload ? payload : "", payload ? len : 0, r->sha256);
    rc = add_header(&r->headers, "x-amz-content-sha256: %s", r->sha256);
    if (rc == 0 && t->session_token && t->session_token[0])
        rc = add_header(&r->headers, "x-amz-security-token: %s", t->session_token);
    /* Always a real Content-Type: libcurl would add its form type to a body,
     * and libcurl 7.88 signs a removal entry ("Content-Type:", "Expect:")
     * as an empty header it then does not send, which S3 refuses. */
    if (rc == 0)
        rc = add_header(&r->headers, "Content-Type: %s",
                        content_type ? content_type : S3_DEFAULT_CONTENT_TYPE);
    if (rc < 0)
        goto out_free;
    return 0;

out_free:
    gd_buf_free(&url);
    gd_buf_free(&prov);
    s3_request_free(r);
    return rc;
}

int s3_request_apply(const struct s3_request *r, CURL *curl, const char *method,
                     const void *payload, size_t len)
{
    CURLcode cc = CURLE_OK;
#define SET(opt, val) (cc == CURLE_OK ? (cc = curl_easy_setopt(curl, opt, val)) : cc)
    SET(CURLOPT_URL, r->url);
    SET(CURLOPT_HTTPHEADER, r->headers);
    SET(CURLOPT_AWS_SIGV4, r->provider);
    SET(CURLOPT_USERNAME, r->user ? r->user : "");
    SET(CURLOPT_PASSWORD, r->secret ? r->secret : "");
    if (strcmp(method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
        SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    } else {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        SET(CURLOPT_POSTFIELDS, payload ? payload : "");
        SET(CURLOPT_CUSTOMREQUEST, method);
    }
#undef SET
    return cc == CURLE_OK ? 0 : GD_ENOTSUP;
}

void s3_request_free(struct s3_request *r)
{
    if (!r)
        return;
    free(r->url);
    free(r->shown);
    free(r->provider);
    curl_slist_free_all(r->headers);
    *r = (struct s3_request){0};
}
