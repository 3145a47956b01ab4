// P/Invoke declarations of the Chime C ABI (bindings/include/chime.h). The library is "chime":
// libchime.so (Linux, Android), libchime.dylib (macOS), chime.dll (Windows); on iOS, where only
// static linking is allowed, Unity resolves "__Internal" instead (define CHIME_STATIC).
using System;
using System.Runtime.InteropServices;

namespace Chime
{
    internal static class Native
    {
#if CHIME_STATIC
        private const string Lib = "__Internal";
#else
        private const string Lib = "chime";
#endif

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void Callback(int code, IntPtr desc, IntPtr json, IntPtr userData);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void EventCallback(IntPtr name, IntPtr json, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr chime_create(byte[] configJson, out IntPtr errorOut);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void chime_destroy(IntPtr engine);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int chime_call(IntPtr engine, byte[] method, byte[] paramsJson,
            Callback cb, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr chime_call_sync(IntPtr engine, byte[] method, byte[] paramsJson);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void chime_set_event_callback(IntPtr engine, EventCallback cb,
            IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int chime_poll(IntPtr engine, int max);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void chime_string_free(IntPtr s);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr chime_version();

        /// A NUL-terminated UTF-8 copy of s.
        internal static byte[] Utf8(string s)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(s ?? "");
            var z = new byte[bytes.Length + 1];
            Buffer.BlockCopy(bytes, 0, z, 0, bytes.Length);
            return z;
        }

        /// Reads a NUL-terminated UTF-8 string (null pointer = empty).
        internal static string Read(IntPtr p)
        {
            if (p == IntPtr.Zero) return "";
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            var bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return System.Text.Encoding.UTF8.GetString(bytes);
        }

        /// Reads and frees a string returned by the library.
        internal static string Take(IntPtr p)
        {
            var s = Read(p);
            if (p != IntPtr.Zero) chime_string_free(p);
            return s;
        }
    }
}
