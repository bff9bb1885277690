/* TEST-ONLY shim, never shipped: Rust's std on Windows imports ProcessPrng
 * from bcryptprimitives.dll, which Wine 8 does not have. This forwards it
 * to advapi32's SystemFunction036 (RtlGenRandom), in chunks that fit its
 * ULONG length. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
