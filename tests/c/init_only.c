/*
 * For tests/tests/security.rs: calls cuInit(0) and prints its result ("cuInit N"); exit 0.
 */
#include "common.h"

int main(void)
{
    printf("cuInit %d\n", (int)cuInit(0));
    return 0;
}
