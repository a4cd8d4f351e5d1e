//! vmm family (in progress).

cuda_exports! {}
