//! pointer family (in progress).

cuda_exports! {}
