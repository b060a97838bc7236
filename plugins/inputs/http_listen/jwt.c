/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwt.c - HS256 JSON Web Token verification (see jwt.h).
 */
#include "jwt.h"
#include <inttypes.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest token accepted: far beyond any sane set of claims. */
#define JWT_MAX_LEN 8192

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long jwt_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero (canonical encoding). */
    if (acc != 0)
        return -1;
    return (long)o;
}

/* Decode one base64url segment as a JSON object; NULL when it is not one. */
static json_t *segment_json(const char *seg, size_t len)
{
    unsigned char *buf = malloc(len * 3 / 4 + 2);
    if (!buf)
        return NULL;
    long n = jwt_b64url_decode(seg, len, buf);
    json_t *j = NULL;
    if (n > 0)
        j = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Read the numeric claim @name into *@v; 0 when absent, -1 when present
 * but not a number. */
static int numeric_claim(const json_t *claims, const char *name, double *v)
{
    const json_t *c = json_object_get(claims, name);
    if (!c)
        return 0;
    if (!json_is_number(c))
        return -1;
    *v = json_number_value(c);
    return isfinite(*v) ? 1 : -1;
}

static int fail(const char **why, const char *reason, int rc)
{
    if (why)
        *why = reason;
    return rc;
}

int jwt_verify_hs256(const char *tok, size_t len, const unsigned char *key, size_t key_len,
                     int64_t now_s, int64_t leeway_s, json_t **claims, const char **why)
{
    if (claims)
        *claims = NULL;
    if (!tok || len == 0 || len > JWT_MAX_LEN)
        return fail(why, "malformed token (length)", GD_EPARSE);
    const char *dot1 = memchr(tok, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)))
        return fail(why, "malformed token (expected three dot-separated parts)", GD_EPARSE);
    size_t hlen = (size_t)(dot1 - tok), plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = len - (size_t)(dot2 + 1 - tok);
    if (!hlen || !plen)
        return fail(why, "malformed token (empty part)", GD_EPARSE);

    json_t *hdr = segment_json(tok, hlen);
    if (!hdr)
        return fail(why, "malformed token header (base64url JSON object expected)", GD_EPARSE);
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    bool hs256 = alg && strcmp(alg, "HS256") == 0;
    bool crit = json_object_get(hdr, "crit") != NULL;
    json_decref(hdr);
    if (!hs256)
        return fail(why, "algorithm not accepted (only HS256)", GD_ENOTSUP);
    if (crit)
        return fail(why, "critical header extensions are not supported", GD_ENOTSUP);

    unsigned char sig[64];
    if (!slen)
        return fail(why, "unsigned token", GD_EPERM);
    if (slen > 44)
        return fail(why, "bad signature", GD_EPERM);
    long sn = jwt_b64url_decode(dot2 + 1, slen, sig);
    if (sn < 0)
        return fail(why, "malformed token signature (base64url expected)", GD_EPARSE);

    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)tok, hlen + 1 + plen, mac,
              &mac_len))
        return fail(why, "HMAC computation failed", GD_EPERM);
    if ((size_t)sn != mac_len || CRYPTO_memcmp(mac, sig, mac_len) != 0)
        return fail(why, "bad signature", GD_EPERM);

    json_t *pl = segment_json(dot1 + 1, plen);
    if (!pl)
        return fail(why, "malformed token payload (base64url JSON object expected)", GD_EPARSE);
    double exp = 0, nbf = 0;
    int has_exp = numeric_claim(pl, "exp", &exp), has_nbf = numeric_claim(pl, "nbf", &nbf);
    int rc = 0;
    if (has_exp < 0 || has_nbf < 0)
        rc = fail(why, "exp or nbf is not a number", GD_EPARSE);
    else if (has_exp && (double)now_s >= exp + (double)leeway_s)
        rc = fail(why, "token expired", GD_ERANGE);
    else if (has_nbf && (double)now_s + (double)leeway_s < nbf)
        rc = fail(why, "token not yet valid (nbf)", GD_ERANGE);
    if (rc < 0 || !claims)
        json_decref(pl);
    else
        *claims = pl;
    return rc;
}

bool jwt_claim_text(const json_t *claims, const char *name, char *out, size_t cap)
{
    const json_t *c = json_object_get(claims, name);
    int n;
    if (json_is_string(c))
        n = snprintf(out, cap, "%s", json_string_value(c));
    else if (json_is_integer(c))
        n = snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(c));
    else
        return false;
    return n > 0 && (size_t)n < cap && strlen(out) == (size_t)n;
}
