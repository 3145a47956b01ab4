/* A content-filter plugin written in C against include/chime_plugin.h: it replaces outgoing text
 * by its ASCII upper-case form. The config {"fail": true} makes create fail. Built and loaded by
 * tests/it/c_plugin.rs to prove the header is enough to write a plugin. */
#include <stdlib.h>
#include <string.h>

#include "chime_plugin.h"

typedef struct Upper {
    int unused;
} Upper;

static ChimeBuf make_buf(const char *bytes, size_t len) {
    ChimeBuf buf = {NULL, 0};
    if (len == 0) return buf;
    buf.ptr = (uint8_t *)malloc(len);
    if (buf.ptr == NULL) return buf;
    memcpy(buf.ptr, bytes, len);
    buf.len = len;
    return buf;
}

static int32_t upper_create(ChimeStr config, void **out_instance, ChimeBuf *out_error) {
    static const char fail[] = "\"fail\"";
    if (config.len >= sizeof(fail) - 1) {
        for (size_t i = 0; i + sizeof(fail) - 1 <= config.len; i++) {
            if (memcmp(config.ptr + i, fail, sizeof(fail) - 1) == 0) {
                static const char message[] = "the C plugin was told to fail";
                *out_error = make_buf(message, sizeof(message) - 1);
                return CHIME_STATUS_INVALID_ARGUMENT;
            }
        }
    }
    Upper *upper = (Upper *)calloc(1, sizeof(Upper));
    if (upper == NULL) return CHIME_STATUS_FAILED;
    *out_instance = upper;
    return CHIME_STATUS_OK;
}

static void upper_destroy(void *instance) { free(instance); }

static int32_t upper_filter(void *instance, ChimeStr text, uint32_t direction, uint32_t content,
                            ChimeFilterResult *out_result, ChimeBuf *out_error) {
    (void)instance;
    (void)out_error;
    if (direction != CHIME_FILTER_OUTGOING || content != CHIME_CONTENT_TEXT) {
        out_result->action = CHIME_FILTER_PASS;
        return CHIME_STATUS_OK;
    }
    ChimeBuf buf = make_buf((const char *)text.ptr, text.len);
    for (size_t i = 0; i < buf.len; i++) {
        if (buf.ptr[i] >= 'a' && buf.ptr[i] <= 'z') buf.ptr[i] = (uint8_t)(buf.ptr[i] - 32);
    }
    out_result->action = CHIME_FILTER_REPLACED;
    out_result->text = buf;
    return CHIME_STATUS_OK;
}

static void upper_free_buf(ChimeBuf buf) { free(buf.ptr); }

static const ChimeContentFilterVTable VTABLE = {
    sizeof(ChimeContentFilterVTable), upper_create, upper_destroy, upper_filter, upper_free_buf,
};

static const ChimePluginDeclaration DECLARATION = {
    CHIME_PLUGIN_ABI_MAJOR, CHIME_PLUGIN_ABI_MINOR, sizeof(ChimePluginDeclaration),
    CHIME_PLUGIN_KIND_CONTENT_FILTER, "c-upper", "1.2.3", &VTABLE,
};

const struct ChimePluginDeclaration *chime_plugin_entry(void) { return &DECLARATION; }
