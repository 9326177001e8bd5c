/* bcryptprimitives.dll for the test Wine only (Debian 12's Wine 8.0 has
 * none): Rust's standard library (1.78 and later) imports ProcessPrng from
 * it for its random numbers (HashMap keys). Windows 10 and later ship the
 * real DLL; this one is never installed there. ProcessPrng is answered
 * with RtlGenRandom (advapi32's SystemFunction036), which Wine has. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
