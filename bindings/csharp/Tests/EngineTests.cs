// Offline checks of the C# wrapper under Mono: errors as ChimeException with the library's codes,
// Task completion only inside Poll() on the polling thread, events, Dispose (pending calls still
// complete, double Dispose harmless). Prints "ok" and exits 0, or prints failures and exits 1.
//
//   mono engine_tests.exe DATA_DIR
using System;
using System.Threading;
using System.Threading.Tasks;
using Chime;

public static class EngineTests
{
    private static int failures;

    private static void Check(bool ok, string what)
    {
        if (!ok)
        {
            Console.Error.WriteLine("FAILED: " + what);
            failures++;
        }
    }

    private static string Config(string dir, string mode)
    {
        return "{\"sdk_app_id\":1400000000,\"server_url\":\"ws://127.0.0.1:1/ws\",\"log_level\":\"warn\"," +
            "\"callback_mode\":\"" + mode + "\",\"data_dir\":" + Engine.Quote(dir) + "}";
    }

    private static int CodeOf(Action a)
    {
        try { a(); }
        catch (ChimeException e) { return e.Code; }
        catch (AggregateException e) when (e.InnerException is ChimeException)
        {
            return ((ChimeException)e.InnerException).Code;
        }
        return 0;
    }

    public static int Main(string[] args)
    {
        var dir = args[0];
        Check(Engine.Version.Length > 0, "version");
        Check(CodeOf(() => new Engine("{\"sdk_app_id\":")) == 6027, "bad config JSON is 6027");
        using (var engine = new Engine(Config(dir + "/pump", "pump")))
        {
            Check(engine.Call("get_login_status") == "{\"status\":\"logout\"}", "sync getter");
            Check(CodeOf(() => engine.Call("no_such_method")) == 6017, "unknown method 6017");
            Check(CodeOf(() => engine.Call("create_text_message", "{\"text\":")) == 6027, "6027");
            Check(CodeOf(() => engine.CallAsync("get_login_status", "[").Wait()) == 6027,
                "a refused async call faults its task");

            int mainThread = Thread.CurrentThread.ManagedThreadId;
            int completedOn = -1;
            var task = engine.CallAsync("create_text_message", "{\"text\":\"héllo\"}");
            task.ContinueWith(t => completedOn = Thread.CurrentThread.ManagedThreadId,
                TaskContinuationOptions.ExecuteSynchronously);
            Thread.Sleep(200);
            Check(!task.IsCompleted, "nothing completes before Poll()");
            for (int i = 0; i < 200 && !task.IsCompleted; i++)
            {
                if (engine.Poll(10) == 0) Thread.Sleep(10);
            }
            Check(task.IsCompleted && !task.IsFaulted, "the task completed inside Poll()");
            Check(completedOn == mainThread, "its continuation ran on the polling thread");
            Check(task.Result.Contains("\"text\":\"héllo\""), "UTF-8 round trip: " + task.Result);

            var failed = engine.CallAsync("no_such_method");
            for (int i = 0; i < 200 && !failed.IsCompleted; i++)
            {
                if (engine.Poll(10) == 0) Thread.Sleep(10);
            }
            Check(CodeOf(() => failed.Wait()) == 6017, "an unknown method faults with 6017");

            string seen = null;
            engine.EventReceived += (s, e) => seen = seen ?? e.Name;
            var login = engine.CallAsync("login", "{\"user_id\":\"u\",\"user_sig\":\"x\"}");
            for (int i = 0; i < 500 && !login.IsCompleted; i++)
            {
                if (engine.Poll(10) == 0) Thread.Sleep(10);
            }
            Check(login.IsFaulted, "login to a closed port fails");
            Check(seen == "on_connecting", "events arrive through EventReceived: " + seen);

            var pending = engine.CallAsync("get_login_status");
            engine.Dispose();
            Check(pending.IsCompleted, "Dispose completes pending calls");
            engine.Dispose();
            Check(CodeOf(() => engine.Call("get_login_status")) == 6013, "after Dispose: 6013");
        }
        if (failures == 0) Console.WriteLine("ok");
        return failures == 0 ? 0 : 1;
    }
}
