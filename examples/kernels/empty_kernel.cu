// Does nothing; for launch-overhead benchmarks and stream-ordering tests.
// Params: ()
extern "C" __global__ void empty_kernel()
{
}
