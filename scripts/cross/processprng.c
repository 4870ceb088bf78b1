/*
 * bcryptprimitives.dll with the one export Wine 8.0 lacks: ProcessPrng, which Rust's std
 * (1.78+) imports for its random numbers and without which every Rust .exe fails to start
 * under Wine 8.0 (exit code 53). Wine 8.13 and later have it; real Windows has had it
 * since Windows 8. Built with mingw and copied into the Wine prefix by wine.sh.
 * https://learn.microsoft.com/en-us/windows/win32/seccng/processprng
 */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
