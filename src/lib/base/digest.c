/* digest.c - MD5 through libcrypto (the format's header and extent
 * checksums) and the text form of a uuid. */
#include "base/base.h"

#include <stdio.h>
#include <openssl/evp.h>

gboolean vma_md5(const void *data, size_t len, uint8_t out[16])
{
    unsigned int n = 16;
    return EVP_Digest(data, len, out, &n, EVP_md5(), NULL) == 1;
}

gboolean vma_md5_with_hole(const void *a, size_t alen, const void *b, size_t blen,
                           uint8_t out[16])
{
    static const uint8_t zero16[16];
    unsigned int n = 16;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    gboolean ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
                  EVP_DigestUpdate(ctx, a, alen) && EVP_DigestUpdate(ctx, zero16, 16) &&
                  EVP_DigestUpdate(ctx, b, blen) && EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
    return ok;
}

void vma_uuid_format(const uint8_t u[16], char out[37])
{
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
             u[11], u[12], u[13], u[14], u[15]);
}
