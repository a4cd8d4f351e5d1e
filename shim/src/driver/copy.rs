//! copy family (in progress).

cuda_exports! {}
