// A console chat on chime::Engine in the shape of an Unreal game-thread tick: pump mode, and a
// loop that drains typed lines then calls poll() once per "frame" (16 ms). A reader thread only
// queues input lines; every engine callback runs on the main thread.
//
//   chat SERVER_URL DATA_DIR USER_ID USER_SIG
//
// Same line protocol as examples/c/chat.c: `@peer text` sends; prints READY, SENT <peer> <json>,
// RECV <json>, ERROR <code> <desc>. End of input logs out and exits 0.
#include <chrono>
#include <deque>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "chime/chime.hpp"

namespace {

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: " << argv[0] << " SERVER_URL DATA_DIR USER_ID USER_SIG\n";
        return 2;
    }
    try {
        chime::Engine engine("{\"sdk_app_id\":1400000000,\"callback_mode\":\"pump\","
                             "\"log_level\":\"warn\",\"platform\":\"unreal\",\"server_url\":" +
                             quote(argv[1]) + ",\"data_dir\":" + quote(argv[2]) + "}");
        engine.on_event([](const std::string& event, const std::string& json) {
            if (event == "on_recv_new_message") std::cout << "RECV " << json << std::endl;
        });
        engine.call_sync("login", "{\"user_id\":" + quote(argv[3]) + ",\"user_sig\":" +
                                      quote(argv[4]) + "}");
        std::cout << "READY " << argv[3] << std::endl;

        std::mutex lock;
        std::deque<std::string> lines;
        bool eof = false;
        std::thread reader([&] {
            std::string line;
            while (std::getline(std::cin, line)) {
                std::lock_guard<std::mutex> g(lock);
                lines.push_back(line);
            }
            std::lock_guard<std::mutex> g(lock);
            eof = true;
        });

        int in_flight = 0;
        for (bool open = true; open;) {
            std::deque<std::string> frame;
            {
                std::lock_guard<std::mutex> g(lock);
                frame.swap(lines);
                open = !eof;
            }
            for (const auto& line : frame) {
                auto space = line.find(' ');
                if (line.empty() || line[0] != '@' || space == std::string::npos) {
                    std::cout << "ERROR 6017 type @peer text" << std::endl;
                    continue;
                }
                std::string peer = line.substr(1, space - 1);
                std::string text = line.substr(space + 1);
                ++in_flight;
                engine.call("send_c2c_text_message",
                            "{\"text\":" + quote(text) + ",\"user_id\":" + quote(peer) + "}",
                            [&in_flight, peer](int32_t code, const std::string& desc,
                                               const std::string& json) {
                                --in_flight;
                                if (code == 0)
                                    std::cout << "SENT " << peer << " " << json << std::endl;
                                else
                                    std::cout << "ERROR " << code << " " << desc << std::endl;
                            });
            }
            engine.poll(100);
            std::this_thread::sleep_for(std::chrono::milliseconds(16));
        }
        reader.join();
        for (int i = 0; i < 300 && in_flight > 0; ++i) {
            if (engine.poll(100) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(16));
        }
        engine.call_sync("logout");
    } catch (const chime::Error& e) {
        std::cerr << "chime: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
