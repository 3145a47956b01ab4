// Offline checks of chime.hpp: RAII (create, move, destroy), errors as chime::Error with the
// library's codes, std::function callbacks run exactly once inside poll() in pump mode, several
// engines at once. Prints "ok" and exits 0 on success; any failure prints it and exits 1.
//
//   wrapper_test DATA_DIR
#include <chrono>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chime/chime.hpp"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        std::cerr << "FAILED: " << what << std::endl;
        ++failures;
    }
}

std::string config(const std::string& dir, const std::string& mode) {
    return "{\"sdk_app_id\":1400000000,\"server_url\":\"ws://127.0.0.1:1/ws\",\"log_level\":\"warn\","
           "\"callback_mode\":\"" + mode + "\",\"data_dir\":\"" + dir + "\"}";
}

template <typename F>
int32_t code_of(F f) {
    try {
        f();
    } catch (const chime::Error& e) {
        return e.code();
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    std::string dir = argv[1];
    check(!chime::Engine::version().empty(), "version");
    check(code_of([] { chime::Engine e("{\"sdk_app_id\":"); }) == 6027, "bad config JSON is 6027");
    check(code_of([&] { chime::Engine e("{\"sdk_app_id\":1,\"server_url\":\"ws://x/ws\",\"data_dir\":\"" + dir +
                                        "/z\",\"colour\":1}"); }) == 6017,
          "an unknown config field is 6017");
    {
        chime::Engine pump(config(dir + "/pump", "pump"));
        chime::Engine thread(config(dir + "/thread", "thread"));
        check(pump.call_sync("get_login_status") == "{\"status\":\"logout\"}", "sync getter");
        check(code_of([&] { pump.call_sync("no_such_method"); }) == 6017, "unknown method 6017");
        check(code_of([&] { pump.call_sync("create_text_message", "{\"text\":"); }) == 6027,
              "malformed params 6027");
        check(code_of([&] { pump.call("create_text_message", "[", nullptr); }) == 6027,
              "a refused async call throws");

        int calls = 0;
        std::string got;
        auto main_thread = std::this_thread::get_id();
        bool on_main = false;
        pump.call("create_text_message", "{\"text\":\"hi\"}",
                  [&](int32_t code, const std::string&, const std::string& json) {
                      ++calls;
                      got = code == 0 ? json : "";
                      on_main = std::this_thread::get_id() == main_thread;
                  });
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        check(calls == 0, "nothing runs before poll");
        int ran = 0;
        for (int i = 0; i < 200 && ran == 0; ++i) {
            ran = pump.poll(10);
            if (ran == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        check(ran == 1 && calls == 1, "the callback ran once inside poll");
        check(on_main, "the callback ran on the polling thread");
        check(got.find("\"text\":\"hi\"") != std::string::npos, "callback JSON: " + got);
        check(pump.poll(10) == 0, "nothing more queued");

        // Move: the moved-to engine works, the moved-from one owns nothing.
        chime::Engine moved(std::move(pump));
        check(moved.call_sync("get_login_user") == "{\"user_id\":\"\"}", "moved engine works");
        check(pump.handle() == nullptr, "moved-from engine is empty");
        check(code_of([&] { pump.call_sync("get_login_user"); }) == 6013, "empty engine answers 6013");

        // A call pending at destruction still gets its one callback (inside the destructor).
        int pending_calls = 0;
        {
            chime::Engine doomed(config(dir + "/doomed", "pump"));
            doomed.call("get_login_status", "{}",
                        [&](int32_t, const std::string&, const std::string&) { ++pending_calls; });
        }
        check(pending_calls == 1, "a pending callback ran exactly once at destruction");

        // Thread mode: the callback arrives on the engine's thread without poll.
        int thread_calls = 0;
        std::mutex m;
        thread.call("get_login_status", "{}",
                    [&](int32_t code, const std::string&, const std::string&) {
                        std::lock_guard<std::mutex> g(m);
                        if (code == 0) ++thread_calls;
                    });
        for (int i = 0; i < 500; ++i) {
            {
                std::lock_guard<std::mutex> g(m);
                if (thread_calls > 0) break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::lock_guard<std::mutex> g(m);
        check(thread_calls == 1, "thread-mode callback");
        check(thread.poll(10) == 0, "poll is a no-op in thread mode");
    }
    if (failures == 0) std::cout << "ok" << std::endl;
    return failures == 0 ? 0 : 1;
}
