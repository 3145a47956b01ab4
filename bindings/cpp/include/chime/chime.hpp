// chime.hpp — a header-only C++17 RAII wrapper over the Chime C ABI (bindings/include/chime.h).
//
// chime::Engine owns one ChimeEngine (created in the constructor, destroyed in the destructor;
// movable, not copyable). Calls take and return JSON text, so any JSON library (or none) fits;
// callbacks are std::function. In an Unreal module, create the engine with
// "callback_mode":"pump" and call poll() from a tick on the game thread, so every callback runs
// there (see docs/embedding.md).
//
// Lifetime rules: a call's callback runs exactly once (with code 6013 if the engine is destroyed
// first) — on the engine's event thread in thread mode, inside poll() in pump mode. The destructor
// returns only after every pending callback has run, so captured references may die after it.
#ifndef CHIME_HPP
#define CHIME_HPP

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "chime.h"

namespace chime {

/// A failed call: the error code of api.md §6 and its description.
class Error : public std::runtime_error {
public:
    Error(int32_t code, const std::string& desc)
        : std::runtime_error(std::to_string(code) + ": " + desc), code_(code), desc_(desc) {}
    /// The numeric code (never 0).
    int32_t code() const noexcept { return code_; }
    /// The description.
    const std::string& desc() const noexcept { return desc_; }

private:
    int32_t code_;
    std::string desc_;
};

/// The answer of an asynchronous call: code 0 and the result JSON, or the error code, its
/// description and the error JSON.
using Callback = std::function<void(int32_t code, const std::string& desc, const std::string& json)>;
/// An event: its name and its data JSON.
using EventHandler = std::function<void(const std::string& event, const std::string& json)>;

namespace detail {

/// Takes ownership of a string returned by the library.
inline std::string take(char* s) {
    if (s == nullptr) return std::string();
    std::string out(s);
    chime_string_free(s);
    return out;
}

/// Reads `"code":N` from an error JSON `{"code":N,"desc":"..."}` produced by the library; 0 when
/// the text is not an error object.
inline int32_t error_code(const std::string& json) {
    static const std::string key = "{\"code\":";
    if (json.compare(0, key.size(), key) != 0) return 0;
    return static_cast<int32_t>(std::strtol(json.c_str() + key.size(), nullptr, 10));
}

/// The `desc` of an error JSON (unescaped for the common escapes).
inline std::string error_desc(const std::string& json) {
    static const std::string key = "\"desc\":\"";
    auto at = json.find(key);
    if (at == std::string::npos) return std::string();
    std::string out;
    for (auto i = at + key.size(); i < json.size() && json[i] != '"'; ++i) {
        if (json[i] == '\\' && i + 1 < json.size()) ++i;
        out.push_back(json[i]);
    }
    return out;
}

inline void call_trampoline(int32_t code, const char* desc, const char* json, void* user_data) {
    std::unique_ptr<Callback> cb(static_cast<Callback*>(user_data));
    if (cb && *cb) {
        try {
            (*cb)(code, desc ? desc : "", json ? json : "");
        } catch (...) {
            // Never let an exception cross back into the library.
        }
    }
}

struct EventSlot {
    std::mutex lock;
    EventHandler handler;
};

inline void event_trampoline(const char* event, const char* json, void* user_data) {
    auto* slot = static_cast<EventSlot*>(user_data);
    EventHandler handler;
    {
        std::lock_guard<std::mutex> guard(slot->lock);
        handler = slot->handler;
    }
    if (handler) {
        try {
            handler(event ? event : "", json ? json : "");
        } catch (...) {
        }
    }
}

}  // namespace detail

/// One engine (one account) — api.md §2 as a C++ object.
class Engine {
public:
    /// Creates the engine (init_sdk) from a config JSON; throws chime::Error on failure.
    explicit Engine(const std::string& config_json) : events_(new detail::EventSlot) {
        char* error = nullptr;
        engine_ = chime_create(config_json.c_str(), &error);
        if (engine_ == nullptr) {
            std::string e = detail::take(error);
            throw Error(detail::error_code(e), detail::error_desc(e));
        }
        chime_set_event_callback(engine_, &detail::event_trampoline, events_.get());
    }

    ~Engine() { reset(); }

    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    Engine(Engine&& other) noexcept
        : engine_(std::exchange(other.engine_, nullptr)), events_(std::move(other.events_)) {}

    Engine& operator=(Engine&& other) noexcept {
        if (this != &other) {
            reset();
            engine_ = std::exchange(other.engine_, nullptr);
            events_ = std::move(other.events_);
        }
        return *this;
    }

    /// Calls a method asynchronously; `cb` runs exactly once. Throws chime::Error if the call is
    /// refused at once (6027 malformed JSON, 6017 bad method, 6013 destroyed engine).
    void call(const std::string& method, const std::string& params_json, Callback cb) {
        auto* boxed = new Callback(std::move(cb));
        int32_t rc = chime_call(engine_, method.c_str(), params_json.c_str(),
                                &detail::call_trampoline, boxed);
        if (rc != 0) {
            delete boxed;
            throw Error(rc, "call to " + method + " refused");
        }
    }

    /// Calls a method and waits: the result JSON, or throws chime::Error.
    std::string call_sync(const std::string& method, const std::string& params_json = "{}") {
        std::string answer =
            detail::take(chime_call_sync(engine_, method.c_str(), params_json.c_str()));
        int32_t code = detail::error_code(answer);
        if (code != 0) throw Error(code, detail::error_desc(answer));
        return answer;
    }

    /// Sets (or, with an empty function, clears) the event handler.
    void on_event(EventHandler handler) {
        if (!events_) return;
        std::lock_guard<std::mutex> guard(events_->lock);
        events_->handler = std::move(handler);
    }

    /// Pump mode: runs up to `max` queued callbacks and events here; returns how many.
    int poll(int max = 100) { return chime_poll(engine_, max); }

    /// The library version.
    static std::string version() { return chime_version(); }

    /// The underlying handle (for direct C ABI calls).
    ChimeEngine* handle() const noexcept { return engine_; }

private:
    void reset() {
        if (engine_ != nullptr) {
            // Pending callbacks run inside chime_destroy (they still see events_ alive).
            chime_destroy(engine_);
            engine_ = nullptr;
        }
        events_.reset();
    }

    ChimeEngine* engine_ = nullptr;
    std::unique_ptr<detail::EventSlot> events_;
};

}  // namespace chime

#endif  // CHIME_HPP
