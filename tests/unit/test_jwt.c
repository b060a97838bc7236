/* SPDX-License-Identifier: Apache-2.0 */
/* test_jwt.c - HS256 JWT verification of the http_listen input: tokens are
 * signed here with OpenSSL's HMAC, then verified: a good token and its
 * claims, a bad signature, alg "none" and HS512 refused, exp and nbf with
 * and without leeway, malformed base64url and structure. */
#include "../../plugins/inputs/http_listen/jwt.h"
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000LL

static const char secret[] = "0123456789abcdef0123456789abcdef";

TestSuite(jwt);

/* Unpadded base64url of @n bytes, appended to @out. */
static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = strlen(out);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = al[(v >> 18) & 63];
        out[o++] = al[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = al[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    out[o] = '\0';
}

/* A token with @header and @payload JSON, signed with @md and @key (no
 * signature when @md is NULL). Static buffer. */
static const char *make_token(const char *header, const char *payload, const EVP_MD *md,
                              const char *key)
{
    static char tok[4096];
    tok[0] = '\0';
    b64url((const unsigned char *)header, strlen(header), tok);
    strcat(tok, ".");
    b64url((const unsigned char *)payload, strlen(payload), tok);
    size_t signed_len = strlen(tok);
    strcat(tok, ".");
    if (md) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        cr_assert_not_null(
            HMAC(md, key, (int)strlen(key), (const unsigned char *)tok, signed_len, mac, &ml));
        b64url(mac, ml, tok);
    }
    return tok;
}

static int verify(const char *tok, json_t **claims, const char **why)
{
    return jwt_verify_hs256(tok, strlen(tok), (const unsigned char *)secret, strlen(secret), NOW,
                            30, claims, why);
}

static const char *hs256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

Test(jwt, good_token_verifies_and_claims_are_extracted)
{
    const char *tok = make_token(hs256,
                                 "{\"sub\":\"chamber-17\",\"site\":\"lab-a\",\"n\":42,"
                                 "\"exp\":1700000600,\"nbf\":1699999000}",
                                 EVP_sha256(), secret);
    json_t *claims = NULL;
    const char *why = NULL;
    cr_assert_eq(verify(tok, &claims, &why), 0, "%s", why);
    cr_assert_not_null(claims);
    char v[64];
    cr_assert(jwt_claim_text(claims, "sub", v, sizeof(v)));
    cr_assert_str_eq(v, "chamber-17");
    cr_assert(jwt_claim_text(claims, "site", v, sizeof(v)));
    cr_assert_str_eq(v, "lab-a");
    cr_assert(jwt_claim_text(claims, "n", v, sizeof(v)));
    cr_assert_str_eq(v, "42");
    cr_assert_not(jwt_claim_text(claims, "missing", v, sizeof(v)));
    cr_assert_not(jwt_claim_text(claims, "sub", v, 4), "a claim that does not fit is refused");
    json_decref(claims);
}

Test(jwt, token_without_exp_or_nbf_is_valid)
{
    const char *tok = make_token(hs256, "{\"sub\":\"x\"}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), 0);
}

Test(jwt, bad_signature_is_refused)
{
    const char *tok =
        make_token(hs256, "{\"sub\":\"x\"}", EVP_sha256(), "another-secret-of-32-bytes......");
    const char *why = NULL;
    json_t *claims = (json_t *)1;
    cr_assert_eq(verify(tok, &claims, &why), GD_EPERM);
    cr_assert_str_eq(why, "bad signature");
    cr_assert_null(claims);

    /* The right signature for another payload. */
    char good[4096], forged[4096];
    snprintf(good, sizeof(good), "%s", make_token(hs256, "{\"sub\":\"a\"}", EVP_sha256(), secret));
    const char *other = make_token(hs256, "{\"sub\":\"b\"}", EVP_sha256(), secret);
    const char *sig = strrchr(good, '.');
    snprintf(forged, sizeof(forged), "%.*s%s", (int)(strrchr(other, '.') - other), other, sig);
    cr_assert_eq(verify(forged, NULL, NULL), GD_EPERM);

    /* A truncated signature. */
    good[strlen(good) - 2] = '\0';
    cr_assert_lt(verify(good, NULL, NULL), 0);
    /* No signature at all. */
    *(strrchr(good, '.') + 1) = '\0';
    cr_assert_eq(verify(good, NULL, NULL), GD_EPERM);
}

Test(jwt, alg_none_is_refused)
{
    const char *tok =
        make_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"x\"}", NULL, NULL);
    const char *why = NULL;
    cr_assert_eq(verify(tok, NULL, &why), GD_ENOTSUP);
    cr_assert_not_null(strstr(why, "HS256"));
    /* Even with a valid HS256 MAC appended. */
    tok = make_token("{\"alg\":\"none\"}", "{\"sub\":\"x\"}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), GD_ENOTSUP);
    /* A header without alg. */
    tok = make_token("{\"typ\":\"JWT\"}", "{\"sub\":\"x\"}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), GD_ENOTSUP);
}

Test(jwt, alg_hs512_is_refused)
{
    const char *tok =
        make_token("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", "{\"sub\":\"x\"}", EVP_sha512(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), GD_ENOTSUP);
    tok = make_token("{\"alg\":\"hs256\"}", "{\"sub\":\"x\"}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), GD_ENOTSUP, "alg is case-sensitive");
}

Test(jwt, exp_in_the_past_beyond_leeway_is_refused)
{
    const char *why = NULL;
    const char *tok = make_token(hs256, "{\"exp\":1699999960}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, &why), GD_ERANGE, "40 s ago, leeway 30 s");
    cr_assert_str_eq(why, "token expired");
    tok = make_token(hs256, "{\"exp\":1699999980}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), 0, "20 s ago is within the leeway");
    tok = make_token(hs256, "{\"exp\":1699999970}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), GD_ERANGE, "exactly the leeway: expired");
    tok = make_token(hs256, "{\"exp\":\"tomorrow\"}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), GD_EPARSE, "a non-numeric exp is refused");
}

Test(jwt, nbf_in_the_future_is_refused)
{
    const char *why = NULL;
    const char *tok = make_token(hs256, "{\"nbf\":1700000100}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, &why), GD_ERANGE);
    cr_assert_str_eq(why, "token not yet valid (nbf)");
    tok = make_token(hs256, "{\"nbf\":1700000020}", EVP_sha256(), secret);
    cr_assert_eq(verify(tok, NULL, NULL), 0, "20 s ahead is within the leeway");
}

Test(jwt, malformed_tokens_are_refused)
{
    char tok[4096];
    snprintf(tok, sizeof(tok), "%s", make_token(hs256, "{\"sub\":\"x\"}", EVP_sha256(), secret));
    cr_assert_eq(verify(tok, NULL, NULL), 0);

    char bad[4200];
    /* Padding is not base64url-without-padding. */
    snprintf(bad, sizeof(bad), "%s=", tok);
    cr_assert_lt(verify(bad, NULL, NULL), 0);
    /* Standard base64 alphabet characters. */
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[1] = '+';
    cr_assert_lt(verify(bad, NULL, NULL), 0);
    /* Two parts, four parts, empty parts, empty token. */
    cr_assert_eq(verify("abc.def", NULL, NULL), GD_EPARSE);
    snprintf(bad, sizeof(bad), "%s.x", tok);
    cr_assert_eq(verify(bad, NULL, NULL), GD_EPARSE);
    cr_assert_eq(verify("..", NULL, NULL), GD_EPARSE);
    cr_assert_eq(verify("", NULL, NULL), GD_EPARSE);
    /* A header that is not JSON, or not an object. */
    const char *t = make_token("not json", "{}", EVP_sha256(), secret);
    cr_assert_eq(verify(t, NULL, NULL), GD_EPARSE);
    t = make_token("[\"HS256\"]", "{}", EVP_sha256(), secret);
    cr_assert_eq(verify(t, NULL, NULL), GD_EPARSE);
    /* A payload that is not an object (signature valid). */
    t = make_token(hs256, "42", EVP_sha256(), secret);
    cr_assert_eq(verify(t, NULL, NULL), GD_EPARSE);
}

Test(jwt, base64url_decoder)
{
    unsigned char out[64];
    cr_assert_eq(jwt_b64url_decode("aGk", 3, out), 2);
    cr_assert_eq(memcmp(out, "hi", 2), 0);
    cr_assert_eq(jwt_b64url_decode("-_8", 3, out), 2);
    cr_assert_eq(out[0], 0xfb);
    cr_assert_eq(out[1], 0xff);
    cr_assert_eq(jwt_b64url_decode("aGk=", 4, out), -1, "padding refused");
    cr_assert_eq(jwt_b64url_decode("a", 1, out), -1, "impossible length");
    cr_assert_eq(jwt_b64url_decode("aGl", 3, out), -1, "non-zero trailing bits");
    cr_assert_eq(jwt_b64url_decode("a/k", 3, out), -1);
    cr_assert_eq(jwt_b64url_decode("", 0, out), 0);
}
