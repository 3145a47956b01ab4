// Chime.Engine: the C ABI as a C# object for Unity (and any .NET/Mono host).
//
// - Create with callback_mode "pump" and call Poll() from a MonoBehaviour's Update(): every
//   Task completion and every event then runs on Unity's main thread, where scene objects may be
//   touched.
// - Async methods return Task<string> (the result JSON) and fail with ChimeException(code, desc).
//   Tasks complete where the callback runs (inside Poll() in pump mode), so synchronous
//   continuations and Unity's await continue on the main thread.
// - Events arrive through the EventReceived C# event as (name, json).
// - Dispose() (or using) destroys the engine; pending calls complete (6013 if cut short) first.
using System;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Chime
{
    /// A failed call: the code of api.md §6 and its description.
    public class ChimeException : Exception
    {
        public int Code { get; }
        public string Desc { get; }

        public ChimeException(int code, string desc) : base(code + ": " + desc)
        {
            Code = code;
            Desc = desc;
        }
    }

    /// One event of api.md §5.
    public sealed class ChimeEvent : EventArgs
    {
        public string Name { get; }
        public string Json { get; }

        public ChimeEvent(string name, string json)
        {
            Name = name;
            Json = json;
        }
    }

    public sealed class Engine : IDisposable
    {
        // One static delegate per kind, so the GC never collects what native code still holds
        // (IL2CPP also requires static callbacks: [MonoPInvokeCallback] in Unity).
        private static readonly Native.Callback CallDone = OnCallDone;
        private static readonly Native.EventCallback EventArrived = OnEvent;

        // Pending calls and live engines, keyed by the integer passed as user_data.
        private static readonly ConcurrentDictionary<long, TaskCompletionSource<string>> Pending =
            new ConcurrentDictionary<long, TaskCompletionSource<string>>();
        private static readonly ConcurrentDictionary<long, Engine> Engines =
            new ConcurrentDictionary<long, Engine>();
        private static long nextId;

        private IntPtr handle;
        private readonly long id;

        /// Raised for every event, in order (inside Poll() in pump mode).
        public event EventHandler<ChimeEvent> EventReceived;

        /// Creates an engine (init_sdk) from a config JSON; throws ChimeException on failure.
        public Engine(string configJson)
        {
            IntPtr error;
            handle = Native.chime_create(Native.Utf8(configJson), out error);
            if (handle == IntPtr.Zero)
            {
                var e = Native.Take(error);
                throw new ChimeException(ErrorCode(e), ErrorDesc(e));
            }
            id = Interlocked.Increment(ref nextId);
            Engines[id] = this;
            Native.chime_set_event_callback(handle, EventArrived, new IntPtr(id));
        }

        /// The library version.
        public static string Version => Native.Read(Native.chime_version());

        /// Calls a method; the task completes with the result JSON or fails with ChimeException.
        public Task<string> CallAsync(string method, string paramsJson = "{}")
        {
            var tcs = new TaskCompletionSource<string>();
            long key = Interlocked.Increment(ref nextId);
            Pending[key] = tcs;
            int rc = Native.chime_call(handle, Native.Utf8(method), Native.Utf8(paramsJson), CallDone,
                new IntPtr(key));
            if (rc != 0)
            {
                Pending.TryRemove(key, out _);
                tcs.SetException(new ChimeException(rc, "call to " + method + " refused"));
            }
            return tcs.Task;
        }

        /// Calls a method and waits (quick getters); the result JSON or a ChimeException.
        public string Call(string method, string paramsJson = "{}")
        {
            var answer = Native.Take(Native.chime_call_sync(handle, Native.Utf8(method),
                Native.Utf8(paramsJson)));
            int code = ErrorCode(answer);
            if (code != 0) throw new ChimeException(code, ErrorDesc(answer));
            return answer;
        }

        /// Pump mode: runs up to max queued callbacks and events on this thread; returns how many.
        public int Poll(int max = 100)
        {
            return Native.chime_poll(handle, max);
        }

        public void Dispose()
        {
            var h = handle;
            handle = IntPtr.Zero;
            if (h != IntPtr.Zero) Native.chime_destroy(h);
            Engines.TryRemove(id, out _);
        }

        private static void OnCallDone(int code, IntPtr desc, IntPtr json, IntPtr userData)
        {
            TaskCompletionSource<string> tcs;
            if (!Pending.TryRemove(userData.ToInt64(), out tcs)) return;
            if (code == 0) tcs.TrySetResult(Native.Read(json));
            else tcs.TrySetException(new ChimeException(code, Native.Read(desc)));
        }

        private static void OnEvent(IntPtr name, IntPtr json, IntPtr userData)
        {
            Engine engine;
            if (!Engines.TryGetValue(userData.ToInt64(), out engine)) return;
            var handler = engine.EventReceived;
            if (handler == null) return;
            try
            {
                handler(engine, new ChimeEvent(Native.Read(name), Native.Read(json)));
            }
            catch (Exception e)
            {
                Console.Error.WriteLine("chime: an event handler threw: " + e);
            }
        }

        /// The code of an error JSON {"code":N,"desc":"..."}; 0 if the text is not one.
        internal static int ErrorCode(string json)
        {
            const string key = "{\"code\":";
            if (!json.StartsWith(key, StringComparison.Ordinal)) return 0;
            int i = key.Length, n = 0;
            while (i < json.Length && char.IsDigit(json[i])) n = n * 10 + (json[i++] - '0');
            return n;
        }

        internal static string ErrorDesc(string json)
        {
            const string key = "\"desc\":\"";
            int at = json.IndexOf(key, StringComparison.Ordinal);
            if (at < 0) return "";
            var sb = new System.Text.StringBuilder();
            for (int i = at + key.Length; i < json.Length && json[i] != '"'; i++)
            {
                if (json[i] == '\\' && i + 1 < json.Length) i++;
                sb.Append(json[i]);
            }
            return sb.ToString();
        }

        /// A JSON string literal for s (quotes and escapes included).
        public static string Quote(string s)
        {
            var sb = new System.Text.StringBuilder("\"");
            foreach (var c in s)
            {
                if (c == '"' || c == '\\') sb.Append('\\').Append(c);
                else if (c < ' ') sb.AppendFormat("\\u{0:x4}", (int)c);
                else sb.Append(c);
            }
            return sb.Append('"').ToString();
        }
    }
}
