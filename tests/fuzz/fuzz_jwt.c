/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the http_listen input's HS256 JWT verifier: any
 * token must be refused with a reason or accepted with claims, never crash;
 * and a token refused for its signature must never be accepted. */
#include "jwt.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char key[] = "fuzzing-secret-of-32-bytes-long!";
    json_t *claims = NULL;
    const char *why = NULL;
    int rc = jwt_verify_hs256((const char *)data, size, key, sizeof(key) - 1, 1700000000, 30,
                              &claims, &why);
    if (rc == 0) {
        if (!claims || !json_is_object(claims))
            abort();
        char out[64];
        jwt_claim_text(claims, "sub", out, sizeof(out));
        json_decref(claims);
    } else if (!why || (rc != GD_EPARSE && rc != GD_ENOTSUP && rc != GD_EPERM &&
                        rc != GD_ERANGE && rc != GD_ENOMEM)) {
        abort();
    }
    unsigned char *buf = malloc(size * 3 / 4 + 1);
    if (buf) {
        long n = jwt_b64url_decode((const char *)data, size, buf);
        if (n > (long)(size * 3 / 4 + 1))
            abort();
        free(buf);
    }
    return 0;
}
