/* User names' keys and skeletons, with ICU (namekey.h). ICU works in
 * UTF-16: each step converts, runs ICU with a first guess at the size, and
 * runs again with the size ICU asked for when that was too small. */
#include "namekey.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

#include "log.h"
#include "mem.h"
#include "utf8.h"

/* UTF-16 text owned here: free with free(). */
struct u16 {
    UChar *s;
    int32_t len;
};

static int to_u16(const char *s, struct u16 *out)
{
    UErrorCode st = U_ZERO_ERROR;
    int32_t n = 0;
    size_t len = strlen(s);
    if (len > INT32_MAX / 2 || !utf8_valid(s, len))
        return -1;
    out->s = xmalloc(((size_t)len + 1) * sizeof(UChar)); /* UTF-16 is never longer */
    u_strFromUTF8(out->s, (int32_t)len + 1, &n, s, (int32_t)len, &st);
    if (U_FAILURE(st)) {
        free(out->s);
        out->s = NULL;
        return -1;
    }
    out->len = n;
    return 0;
}

static int append_utf8(const struct u16 *u, struct buf *out)
{
    UErrorCode st = U_ZERO_ERROR;
    int32_t n = 0;
    u_strToUTF8(NULL, 0, &n, u->s, u->len, &st); /* preflight: the size */
    if (st != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(st))
        return -1;
    buf_reserve(out, (size_t)n + 1);
    st = U_ZERO_ERROR;
    u_strToUTF8(out->data + out->len, n + 1, &n, u->s, u->len, &st);
    if (U_FAILURE(st))
        return -1;
    out->len += (size_t)n;
    out->data[out->len] = '\0';
    return 0;
}

/* NFKC_Casefold of in into *out (new). */
static int fold16(const struct u16 *in, struct u16 *out)
{
    UErrorCode st = U_ZERO_ERROR;
    const UNormalizer2 *nf = unorm2_getNFKCCasefoldInstance(&st);
    if (U_FAILURE(st)) {
        log_err("ICU: no NFKC_Casefold: %s", u_errorName(st));
        return -1;
    }
    int32_t cap = in->len * 2 + 16;
    for (int tries = 0; tries < 2; tries++) {
        out->s = xmalloc((size_t)cap * sizeof(UChar));
        st = U_ZERO_ERROR;
        out->len = unorm2_normalize(nf, in->s, in->len, out->s, cap, &st);
        if (U_SUCCESS(st))
            return 0;
        free(out->s);
        out->s = NULL;
        if (st != U_BUFFER_OVERFLOW_ERROR)
            break;
        cap = out->len + 1;
    }
    return -1;
}

static USpoofChecker *spoof_checker(void)
{
    static USpoofChecker *sc;
    if (sc == NULL) {
        UErrorCode st = U_ZERO_ERROR;
        sc = uspoof_open(&st);
        if (U_FAILURE(st)) {
            log_err("ICU: no spoof checker: %s", u_errorName(st));
            sc = NULL;
        }
    }
    return sc;
}

static int skeleton16(const struct u16 *in, struct u16 *out)
{
    USpoofChecker *sc = spoof_checker();
    if (sc == NULL)
        return -1;
    int32_t cap = in->len * 2 + 16;
    for (int tries = 0; tries < 2; tries++) {
        UErrorCode st = U_ZERO_ERROR;
        out->s = xmalloc((size_t)cap * sizeof(UChar));
        out->len = uspoof_getSkeleton(sc, 0, in->s, in->len, out->s, cap, &st);
        if (U_SUCCESS(st))
            return 0;
        free(out->s);
        out->s = NULL;
        if (st != U_BUFFER_OVERFLOW_ERROR)
            break;
        cap = out->len + 1;
    }
    return -1;
}

int namekey_has_ignorable(const char *name)
{
    const uint8_t *s = (const uint8_t *)name;
    int32_t len = (int32_t)strnlen(name, INT32_MAX - 1), i = 0;
    while (i < len) {
        UChar32 c;
        U8_NEXT(s, i, len, c);
        if (c < 0 || u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT))
            return 1;
    }
    return 0;
}

int namekey_fold(const char *name, struct buf *key)
{
    struct u16 in = {0}, folded = {0};
    int rc = -1;
    if (to_u16(name, &in) == 0 && fold16(&in, &folded) == 0)
        rc = append_utf8(&folded, key);
    free(in.s);
    free(folded.s);
    return rc;
}

int namekey_make(const char *name, struct buf *key, struct buf *skeleton)
{
    struct u16 in = {0}, folded = {0}, skel = {0};
    int rc = -1;
    if (to_u16(name, &in) == 0 && fold16(&in, &folded) == 0 &&
        skeleton16(&folded, &skel) == 0 && append_utf8(&folded, key) == 0)
        rc = append_utf8(&skel, skeleton);
    free(in.s);
    free(folded.s);
    free(skel.s);
    return rc;
}
