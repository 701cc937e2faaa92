/* Runs the fuzz target over saved inputs (the seed corpus and every input
 * that ever crashed it), so `make test` replays them in the normal and the
 * sanitizer build without needing clang or libFuzzer. The target is the one
 * linked in: replay has fuzz_request.c, replay_fcgi has fuzz_fcgi.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            perror(argv[i]);
            failed++;
            continue;
        }
        static uint8_t data[1 << 20];
        size_t n = fread(data, 1, sizeof(data), f);
        fclose(f);
        LLVMFuzzerTestOneInput(data, n);
    }
    printf("fuzz replay: %d passed, %d failed\n", argc - 1 - failed, failed);
    return failed != 0;
}
