// A console chat on Chime.Engine in the shape of a Unity scene: pump mode, and a main loop that
// plays Update() every 16 ms (handle typed lines, then Poll()). Task continuations and events all
// run on the main thread.
//
//   mono chat.exe SERVER_URL DATA_DIR USER_ID USER_SIG
//
// Same line protocol as examples/c/chat.c: `@peer text` sends; prints READY, SENT <peer> <json>,
// RECV <json>, ERROR <code> <desc>. End of input logs out and exits 0.
using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;
using Chime;

public static class Chat
{
    public static int Main(string[] args)
    {
        if (args.Length != 4)
        {
            Console.Error.WriteLine("usage: chat.exe SERVER_URL DATA_DIR USER_ID USER_SIG");
            return 2;
        }
        try
        {
            using (var engine = new Engine("{\"sdk_app_id\":1400000000,\"callback_mode\":\"pump\"," +
                "\"log_level\":\"warn\",\"platform\":\"unity\",\"server_url\":" + Engine.Quote(args[0]) +
                ",\"data_dir\":" + Engine.Quote(args[1]) + "}"))
            {
                engine.EventReceived += (sender, e) =>
                {
                    if (e.Name == "on_recv_new_message") Out("RECV " + e.Json);
                };
                engine.Call("login", "{\"user_id\":" + Engine.Quote(args[2]) + ",\"user_sig\":" +
                    Engine.Quote(args[3]) + "}");
                Out("READY " + args[2]);

                var lines = new BlockingCollection<string>();
                var reader = new Thread(() =>
                {
                    string line;
                    while ((line = Console.In.ReadLine()) != null) lines.Add(line);
                    lines.CompleteAdding();
                });
                reader.IsBackground = true;
                reader.Start();

                while (!lines.IsCompleted)
                {
                    string line;
                    while (lines.TryTake(out line)) Send(engine, line);
                    engine.Poll(100); // Update()
                    Thread.Sleep(16);
                }
                for (int i = 0; i < 300 && Volatile.Read(ref inFlight) > 0; i++)
                {
                    if (engine.Poll(100) == 0) Thread.Sleep(16);
                }
                engine.Call("logout");
            }
            return 0;
        }
        catch (ChimeException e)
        {
            Console.Error.WriteLine("chime: " + e.Message);
            return 1;
        }
    }

    // Sends accepted and not answered yet.
    private static int inFlight;

    private static void Send(Engine engine, string line)
    {
        int space = line.IndexOf(' ');
        if (!line.StartsWith("@") || space < 0)
        {
            Out("ERROR 6017 type @peer text");
            return;
        }
        var peer = line.Substring(1, space - 1);
        var text = line.Substring(space + 1);
        Interlocked.Increment(ref inFlight);
        engine.CallAsync("send_c2c_text_message",
            "{\"text\":" + Engine.Quote(text) + ",\"user_id\":" + Engine.Quote(peer) + "}")
            .ContinueWith(t =>
            {
                var ce = t.IsFaulted ? t.Exception.InnerException as ChimeException : null;
                if (ce != null) Out("ERROR " + ce.Code + " " + ce.Desc);
                else if (!t.IsFaulted) Out("SENT " + peer + " " + t.Result);
                Interlocked.Decrement(ref inFlight);
            }, TaskContinuationOptions.ExecuteSynchronously);
    }

    private static readonly object OutLock = new object();

    private static void Out(string line)
    {
        lock (OutLock)
        {
            Console.Out.WriteLine(line);
            Console.Out.Flush();
        }
    }
}
