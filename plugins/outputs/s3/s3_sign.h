/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3_sign.h - what one S3 request hands to libcurl: the URL (path-style or
 * virtual-hosted, key URI-encoded), the headers (x-amz-content-sha256 with
 * the SHA-256 of the payload, x-amz-security-token for temporary
 * credentials) and the CURLOPT_AWS_SIGV4 provider string with the
 * credentials. libcurl computes the SigV4 signature itself from these.
 *
 * Also the SHA-256 used for the payload hash (FIPS 180-4), so the plugin
 * needs no crypto library.
 */
#ifndef GATHERD_S3_SIGN_H
#define GATHERD_S3_SIGN_H

#include <gatherd/gatherd.h>
#include <curl/curl.h>

/* ---- SHA-256 -------------------------------------------------------- */

#define S3_SHA256_BYTES 32
/* Hex digest length without the NUL. */
#define S3_SHA256_HEX 64

/* Incremental SHA-256. s3_sha256_init(), any number of _update(), _final(). */
struct s3_sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed */
    uint8_t block[64];
    size_t used;
};

void s3_sha256_init(struct s3_sha256 *c);
void s3_sha256_update(struct s3_sha256 *c, const void *data, size_t len);
void s3_sha256_final(struct s3_sha256 *c, uint8_t out[S3_SHA256_BYTES]);
/* s3_sha256_hex() - the lowercase hex SHA-256 of @len bytes at @data into
 * @out (S3_SHA256_HEX + 1 bytes, NUL-terminated). */
void s3_sha256_hex(const void *data, size_t len, char out[S3_SHA256_HEX + 1]);

/* ---- requests ------------------------------------------------------- */

/* Content-Type of a request without one of its own. */
#define S3_DEFAULT_CONTENT_TYPE "application/octet-stream"

/* Where requests go and who signs them. Strings are borrowed. */
struct s3_target {
    const char *endpoint; /* "scheme://host[:port]" (no path); NULL: AWS's for the region */
    const char *region;   /* "us-east-1" */
    const char *bucket;
    bool path_style;           /* endpoint/bucket/key instead of bucket.host/key */
    const char *access_key;    /* access key id */
    const char *secret_key;    /* secret access key */
    const char *session_token; /* NULL or "" unless temporary credentials */
};

/* One request, ready for libcurl. Zero-initialise; s3_request_free(). */
struct s3_request {
    char *url;          /* full URL, key and query encoded */
    char *shown;        /* the URL for log lines (no query) */
    char *provider;     /* CURLOPT_AWS_SIGV4: "aws:amz:REGION:s3" */
    const char *user;   /* CURLOPT_USERNAME: the access key id (borrowed) */
    const char *secret; /* CURLOPT_PASSWORD: the secret access key (borrowed) */
    struct curl_slist *headers;
    char sha256[S3_SHA256_HEX + 1]; /* x-amz-content-sha256 value */
};

/* s3_uri_encode() - append @len bytes of @s URI-encoded the way SigV4
 * canonicalises S3 paths and query values: A-Z a-z 0-9 - . _ ~ stay, '/'
 * stays when @keep_slash, every other byte becomes %XX (uppercase hex). */
int s3_uri_encode(gd_buf *out, const char *s, size_t len, bool keep_slash);

/* s3_endpoint_default() - "https://s3.REGION.amazonaws.com" into @out. */
int s3_endpoint_default(gd_buf *out, const char *region);

/* s3_request_build() - fill @r for a request on @key (NULL: the bucket
 * itself) with @query (already canonical: sorted "a=b&c=d", values
 * encoded; NULL for none) and a payload of @len bytes at @payload (may be
 * NULL when @len is 0). @payload_sha256 is the payload's hex SHA-256 when
 * the caller has it (NULL: computed here). @content_type is sent (NULL:
 * S3_DEFAULT_CONTENT_TYPE). @r is freed first. Returns 0 or GD_ENOMEM/GD_EINVAL. */
int s3_request_build(struct s3_request *r, const struct s3_target *t, const char *key,
                     const char *query, const void *payload, size_t len, const char *payload_sha256,
                     const char *content_type);

/* s3_request_apply() - set @r on @curl as a @method ("PUT", "POST",
 * "GET", "DELETE") request with the payload (borrowed: it must outlive the
 * transfer). Returns 0 or GD_ENOTSUP when libcurl refuses an option. */
int s3_request_apply(const struct s3_request *r, CURL *curl, const char *method,
                     const void *payload, size_t len);

/* s3_request_free() - release @r's memory (it may be reused). Accepts NULL. */
void s3_request_free(struct s3_request *r);

#endif
