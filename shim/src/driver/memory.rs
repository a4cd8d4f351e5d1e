//! memory family (in progress).

cuda_exports! {}
