/*
 * A console chat over the Chime C ABI, in the shape of a game loop: the engine runs in pump mode
 * and the main loop calls chime_poll once per "frame", so every callback and event runs on this
 * one thread.
 *
 *   chat SERVER_URL DATA_DIR USER_ID USER_SIG
 *
 * Type `@peer some text` to send "some text" to peer. Output, one line each:
 *   READY <user_id>            logged in
 *   SENT <peer> <msg json>     a send succeeded
 *   ERROR <code> <desc>        a call failed
 *   RECV <message json>        a message arrived (on_recv_new_message)
 * End of input logs out and exits 0.
 *
 * Build: cc chat.c -I ../../bindings/include -L ../../target/debug -lchime -o chat
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "chime.h"

/* Sends accepted and not yet answered. */
static int in_flight = 0;

/* Appends `s` to `out` as a JSON string (quotes and escapes included). */
static void json_string(char *out, size_t cap, const char *s) {
    size_t n = strlen(out);
    if (n + 2 >= cap) return;
    out[n++] = '"';
    for (; *s && n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
}

static void on_event(const char *event, const char *json, void *user_data) {
    (void)user_data;
    if (strcmp(event, "on_recv_new_message") == 0) {
        printf("RECV %s\n", json);
        fflush(stdout);
    } else if (strcmp(event, "on_kicked_offline") == 0) {
        printf("ERROR 6208 kicked offline\n");
        fflush(stdout);
    }
}

/* user_data is the peer's name, heap-allocated per send. */
static void on_sent(int32_t code, const char *desc, const char *json, void *user_data) {
    char *peer = user_data;
    if (code == 0) {
        printf("SENT %s %s\n", peer, json);
    } else {
        printf("ERROR %d %s\n", code, desc);
    }
    fflush(stdout);
    free(peer);
    in_flight--;
}

static void send_line(ChimeEngine *engine, char *line) {
    char *space = strchr(line, ' ');
    if (line[0] != '@' || space == NULL) {
        printf("ERROR 6017 type @peer text\n");
        fflush(stdout);
        return;
    }
    *space = '\0';
    const char *peer = line + 1;
    const char *text = space + 1;
    char params[8192] = "{\"text\":";
    json_string(params, sizeof params, text);
    strncat(params, ",\"user_id\":", sizeof params - strlen(params) - 1);
    json_string(params, sizeof params, peer);
    strncat(params, "}", sizeof params - strlen(params) - 1);
    char *peer_copy = strdup(peer);
    int32_t rc = chime_call(engine, "send_c2c_text_message", params, on_sent, peer_copy);
    if (rc != 0) {
        printf("ERROR %d send not accepted\n", rc);
        fflush(stdout);
        free(peer_copy);
    } else {
        in_flight++;
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SERVER_URL DATA_DIR USER_ID USER_SIG\n", argv[0]);
        return 2;
    }
    char config[4096] = "{\"sdk_app_id\":1400000000,\"callback_mode\":\"pump\",\"log_level\":\"warn\","
                        "\"platform\":\"linux\",\"server_url\":";
    json_string(config, sizeof config, argv[1]);
    strncat(config, ",\"data_dir\":", sizeof config - strlen(config) - 1);
    json_string(config, sizeof config, argv[2]);
    strncat(config, "}", sizeof config - strlen(config) - 1);

    char *error = NULL;
    ChimeEngine *engine = chime_create(config, &error);
    if (engine == NULL) {
        fprintf(stderr, "chime_create: %s\n", error ? error : "?");
        chime_string_free(error);
        return 1;
    }
    chime_set_event_callback(engine, on_event, NULL);

    char login[4096] = "{\"user_id\":";
    json_string(login, sizeof login, argv[3]);
    strncat(login, ",\"user_sig\":", sizeof login - strlen(login) - 1);
    json_string(login, sizeof login, argv[4]);
    strncat(login, "}", sizeof login - strlen(login) - 1);
    char *answer = chime_call_sync(engine, "login", login);
    if (strcmp(answer, "{}") != 0) {
        fprintf(stderr, "login: %s\n", answer);
        chime_string_free(answer);
        chime_destroy(engine);
        return 1;
    }
    chime_string_free(answer);
    printf("READY %s\n", argv[3]);
    fflush(stdout);

    /* The game loop: one frame = wait up to 10 ms for input, then poll the engine. */
    char line[4096];
    size_t used = 0;
    int open = 1;
    while (open) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(STDIN_FILENO, &fds);
        struct timeval tv = {0, 10000};
        int ready = select(STDIN_FILENO + 1, &fds, NULL, NULL, &tv);
        if (ready < 0 && errno != EINTR) break;
        if (ready > 0) {
            ssize_t got = read(STDIN_FILENO, line + used, sizeof line - 1 - used);
            if (got <= 0) {
                open = 0;
            } else {
                used += (size_t)got;
                line[used] = '\0';
                char *nl;
                while ((nl = strchr(line, '\n')) != NULL) {
                    *nl = '\0';
                    if (nl > line && nl[-1] == '\r') nl[-1] = '\0';
                    if (line[0] != '\0') send_line(engine, line);
                    size_t rest = used - (size_t)(nl + 1 - line);
                    memmove(line, nl + 1, rest + 1);
                    used = rest;
                }
                if (used == sizeof line - 1) used = 0; /* an overlong line is dropped */
            }
        }
        chime_poll(engine, 100);
    }
    /* Let sends still in flight answer before leaving (bounded: 5 s). */
    for (int i = 0; i < 500 && in_flight > 0; i++) {
        if (chime_poll(engine, 100) == 0) usleep(10000);
    }
    char *out = chime_call_sync(engine, "logout", "{}");
    chime_string_free(out);
    chime_destroy(engine);
    return 0;
}
