//! TOOLS_CONTEXT (21318c60-9714-3248-8ca6-41ff7324c8f2): a table libcudart 13.5 asks for at
//! start-up (12.9 and 13.0 never do) and fails every runtime call with `cudaErrorInvalidValue`
//! without. NVIDIA's driver 595 serves it with a size header and 94 slots (public notes name it
//! `CU_ETID_ToolsContext`; ZLUDA's notes list slots 3 and 4 as context queries). The slots' meaning
//! is otherwise unknown: every slot is a logging trampoline that returns `CUDA_ERROR_NOT_SUPPORTED`,
//! so a call shows up in the log with its first argument registers.

#[allow(unused_imports)]
use super::*;

/// `21318c60-9714-3248-8ca6-41ff7324c8f2`
pub const TOOLS_CONTEXT: [u8; 16] = uuid("21318c60-9714-3248-8ca6-41ff7324c8f2");

/// Slots including the size header (95 × 8 bytes, as driver 595 reports).
const SLOTS: usize = 95;

unknown_slots!("TOOLS_CONTEXT":
    tc_1 = 1, tc_2 = 2, tc_3 = 3, tc_4 = 4, tc_5 = 5, tc_6 = 6, tc_7 = 7, tc_8 = 8, tc_9 = 9,
    tc_10 = 10, tc_11 = 11, tc_12 = 12, tc_13 = 13, tc_14 = 14, tc_15 = 15, tc_16 = 16, tc_17 =
    17, tc_18 = 18, tc_19 = 19, tc_20 = 20, tc_21 = 21, tc_22 = 22, tc_23 = 23, tc_24 = 24,
    tc_25 = 25, tc_26 = 26, tc_27 = 27, tc_28 = 28, tc_29 = 29, tc_30 = 30, tc_31 = 31, tc_32 =
    32, tc_33 = 33, tc_34 = 34, tc_35 = 35, tc_36 = 36, tc_37 = 37, tc_38 = 38, tc_39 = 39,
    tc_40 = 40, tc_41 = 41, tc_42 = 42, tc_43 = 43, tc_44 = 44, tc_45 = 45, tc_46 = 46, tc_47 =
    47, tc_48 = 48, tc_49 = 49, tc_50 = 50, tc_51 = 51, tc_52 = 52, tc_53 = 53, tc_54 = 54,
    tc_55 = 55, tc_56 = 56, tc_57 = 57, tc_58 = 58, tc_59 = 59, tc_60 = 60, tc_61 = 61, tc_62 =
    62, tc_63 = 63, tc_64 = 64, tc_65 = 65, tc_66 = 66, tc_67 = 67, tc_68 = 68, tc_69 = 69,
    tc_70 = 70, tc_71 = 71, tc_72 = 72, tc_73 = 73, tc_74 = 74, tc_75 = 75, tc_76 = 76, tc_77 =
    77, tc_78 = 78, tc_79 = 79, tc_80 = 80, tc_81 = 81, tc_82 = 82, tc_83 = 83, tc_84 = 84,
    tc_85 = 85, tc_86 = 86, tc_87 = 87, tc_88 = 88, tc_89 = 89, tc_90 = 90, tc_91 = 91, tc_92 =
    92, tc_93 = 93, tc_94 = 94
);

type S = *const c_void;

/// TOOLS_CONTEXT: the size, then 94 logging trampolines.
pub static TOOLS_CONTEXT_TABLE: Table<SLOTS> = Table([
    size_slot(SLOTS),
    tc_1 as S,
    tc_2 as S,
    tc_3 as S,
    tc_4 as S,
    tc_5 as S,
    tc_6 as S,
    tc_7 as S,
    tc_8 as S,
    tc_9 as S,
    tc_10 as S,
    tc_11 as S,
    tc_12 as S,
    tc_13 as S,
    tc_14 as S,
    tc_15 as S,
    tc_16 as S,
    tc_17 as S,
    tc_18 as S,
    tc_19 as S,
    tc_20 as S,
    tc_21 as S,
    tc_22 as S,
    tc_23 as S,
    tc_24 as S,
    tc_25 as S,
    tc_26 as S,
    tc_27 as S,
    tc_28 as S,
    tc_29 as S,
    tc_30 as S,
    tc_31 as S,
    tc_32 as S,
    tc_33 as S,
    tc_34 as S,
    tc_35 as S,
    tc_36 as S,
    tc_37 as S,
    tc_38 as S,
    tc_39 as S,
    tc_40 as S,
    tc_41 as S,
    tc_42 as S,
    tc_43 as S,
    tc_44 as S,
    tc_45 as S,
    tc_46 as S,
    tc_47 as S,
    tc_48 as S,
    tc_49 as S,
    tc_50 as S,
    tc_51 as S,
    tc_52 as S,
    tc_53 as S,
    tc_54 as S,
    tc_55 as S,
    tc_56 as S,
    tc_57 as S,
    tc_58 as S,
    tc_59 as S,
    tc_60 as S,
    tc_61 as S,
    tc_62 as S,
    tc_63 as S,
    tc_64 as S,
    tc_65 as S,
    tc_66 as S,
    tc_67 as S,
    tc_68 as S,
    tc_69 as S,
    tc_70 as S,
    tc_71 as S,
    tc_72 as S,
    tc_73 as S,
    tc_74 as S,
    tc_75 as S,
    tc_76 as S,
    tc_77 as S,
    tc_78 as S,
    tc_79 as S,
    tc_80 as S,
    tc_81 as S,
    tc_82 as S,
    tc_83 as S,
    tc_84 as S,
    tc_85 as S,
    tc_86 as S,
    tc_87 as S,
    tc_88 as S,
    tc_89 as S,
    tc_90 as S,
    tc_91 as S,
    tc_92 as S,
    tc_93 as S,
    tc_94 as S,
]);
