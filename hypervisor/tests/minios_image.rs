//! The embedded minios image: a loadable ELF64 for the guest ABI, made only of
//! instructions the emulating KVM of the build machines can run.
//!
//! On these machines KVM runs ordinary guests through its instruction
//! emulator, which has no `popcnt`, no `cmpxchg16b`, no VEX/EVEX (AVX) forms
//! and, of SSE, only the plain register/memory moves. A guest that uses any
//! other instruction dies with an emulation failure, so every instruction of
//! the image's executable segments is decoded and checked here.

use guest_abi::layout::{KERNEL_BASE, MIN_RAM};
use iced_x86::{
    CpuidFeature, Decoder, DecoderOptions, EncodingKind, Formatter, Instruction, IntelFormatter,
    Mnemonic,
};
use object::{Endian, Endianness};
use object::elf::{EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};

/// A loadable segment of the image.
struct Segment {
    vaddr: u64,
    memsz: u64,
    flags: u32,
    data: Vec<u8>,
}

fn segments(image: &[u8]) -> (u64, Vec<Segment>) {
    let elf = ElfFile64::<Endianness>::parse(image).expect("minios is an ELF64 file");
    let header = elf.elf_header();
    let endian = elf.endian();
    assert!(endian.is_little_endian(), "minios must be little endian");
    assert_eq!(
        header.e_machine(endian),
        EM_X86_64,
        "minios must be built for x86-64"
    );
    assert_eq!(
        header.e_type(endian),
        ET_EXEC,
        "minios must be a static executable (ET_EXEC)"
    );
    let loads = elf
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == PT_LOAD)
        .map(|ph| Segment {
            vaddr: ph.p_vaddr(endian),
            memsz: ph.p_memsz(endian),
            flags: ph.p_flags(endian),
            data: ph
                .data(endian, image)
                .expect("segment data inside the file")
                .to_vec(),
        })
        .collect();
    (header.e_entry(endian), loads)
}

#[test]
fn image_is_an_elf64_loadable_at_kernel_base() {
    let (entry, loads) = segments(hypervisor::minios::elf());
    assert!(!loads.is_empty(), "minios has no PT_LOAD segment");
    for s in &loads {
        assert!(
            s.vaddr >= KERNEL_BASE,
            "PT_LOAD at {:#x} is below KERNEL_BASE {KERNEL_BASE:#x}",
            s.vaddr
        );
        assert!(
            s.data.len() as u64 <= s.memsz,
            "PT_LOAD at {:#x}: filesz > memsz",
            s.vaddr
        );
        assert!(
            s.flags & PF_X == 0 || s.flags & PF_W == 0,
            "PT_LOAD at {:#x} is both writable and executable",
            s.vaddr
        );
    }
    let mut spans: Vec<(u64, u64)> = loads.iter().map(|s| (s.vaddr, s.vaddr + s.memsz)).collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "PT_LOAD segments overlap: {pair:x?}"
        );
    }
    let end = spans.last().map_or(0, |s| s.1);
    assert!(
        end <= MIN_RAM,
        "minios ends at {end:#x}: it must fit in the smallest domain ({MIN_RAM:#x} bytes)"
    );
    assert!(
        loads
            .iter()
            .any(|s| s.flags & PF_X != 0 && (s.vaddr..s.vaddr + s.memsz).contains(&entry)),
        "entry {entry:#x} is not inside an executable PT_LOAD segment"
    );
}

/// SSE instructions KVM's emulator implements (`arch/x86/kvm/emulate.c`:
/// 0F 10/11, 0F 28/29, 0F 2B, 0F 6F/7F, 66 0F E7): moves only.
const EMULATED_SSE_MOVES: &[Mnemonic] = &[
    Mnemonic::Movups,
    Mnemonic::Movupd,
    Mnemonic::Movaps,
    Mnemonic::Movapd,
    Mnemonic::Movntps,
    Mnemonic::Movntpd,
    Mnemonic::Movdqa,
    Mnemonic::Movdqu,
    Mnemonic::Movntdq,
];

/// Why the emulating KVM cannot run `instr`, if it cannot.
fn unrunnable(instr: &Instruction) -> Option<&'static str> {
    if instr.is_invalid() {
        return Some("bytes that do not decode as an instruction");
    }
    match instr.mnemonic() {
        Mnemonic::Popcnt => return Some("POPCNT is not emulated"),
        Mnemonic::Cmpxchg16b => return Some("CMPXCHG16B (128-bit atomic) is not emulated"),
        _ => {}
    }
    if instr.encoding() != EncodingKind::Legacy {
        return Some("VEX/EVEX/XOP encoding (AVX family) is not emulated");
    }
    let features = instr.cpuid_features();
    let named = |prefix: &str| {
        features
            .iter()
            .any(|f| feature_name(*f).starts_with(prefix))
    };
    if named("AVX") {
        return Some("AVX/AVX2/AVX-512 is not emulated");
    }
    let simd_or_x87 = named("SSE") || named("SSSE") || named("MMX") || named("FPU");
    if simd_or_x87 && !EMULATED_SSE_MOVES.contains(&instr.mnemonic()) {
        return Some("SIMD/x87 arithmetic is not emulated (only plain SSE moves are)");
    }
    None
}

fn feature_name(feature: CpuidFeature) -> String {
    format!("{feature:?}")
}

/// Every instruction in `code` (loaded at `ip`) the emulating KVM cannot run,
/// as "address: instruction: reason".
fn offending(code: &[u8], ip: u64) -> Vec<String> {
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let mut instr = Instruction::default();
    let mut found = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        if let Some(reason) = unrunnable(&instr) {
            let mut text = String::new();
            formatter.format(&instr, &mut text);
            found.push(format!(
                "{:#x}: {text} ({:?}): {reason}",
                instr.ip(),
                instr.mnemonic()
            ));
        }
    }
    found
}

#[test]
fn every_instruction_runs_under_the_emulating_kvm() {
    let (_, loads) = segments(hypervisor::minios::elf());
    let mut decoded = 0;
    let mut found = Vec::new();
    for s in loads.iter().filter(|s| s.flags & PF_X != 0) {
        decoded += s.data.len();
        found.extend(offending(&s.data, s.vaddr));
    }
    assert!(decoded > 0, "minios has no executable code");
    assert!(
        found.is_empty(),
        "minios uses {} instruction(s) the emulating KVM cannot run:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The checker itself catches each kind of forbidden instruction (and lets
/// the ordinary ones through), so a clean result above means something.
#[test]
fn checker_flags_each_forbidden_kind() {
    let cases: &[(&[u8], Option<&str>)] = &[
        (&[0xf3, 0x48, 0x0f, 0xb8, 0xc1], Some("POPCNT")), // popcnt rax, rcx
        (&[0xf0, 0x48, 0x0f, 0xc7, 0x0f], Some("CMPXCHG16B")), // lock cmpxchg16b [rdi]
        (&[0xc5, 0xfc, 0x58, 0xc1], Some("VEX")),          // vaddps ymm0, ymm0, ymm1
        (&[0x62, 0xf1, 0x7c, 0x48, 0x58, 0xc1], Some("VEX")), // vaddps zmm0, zmm0, zmm1
        (&[0x0f, 0x57, 0xc0], Some("SIMD")),               // xorps xmm0, xmm0
        (&[0x66, 0x0f, 0xef, 0xc0], Some("SIMD")),         // pxor xmm0, xmm0
        (&[0x0f, 0x10, 0x06], None),                       // movups xmm0, [rsi]
        (&[0xf3, 0x0f, 0x6f, 0x06], None),                 // movdqu xmm0, [rsi]
        (&[0x0f, 0xc7, 0x0f], None),                       // cmpxchg8b [rdi]
        (&[0xe7, 0x00], None),                             // out 0, eax
        (&[0x0f, 0x31], None),                             // rdtsc
    ];
    for (bytes, expected) in cases {
        let found = offending(bytes, 0x1000);
        match expected {
            Some(word) => assert!(
                found.len() == 1 && found[0].contains(word),
                "{bytes:02x?}: expected one finding naming {word}, got {found:?}"
            ),
            None => assert!(
                found.is_empty(),
                "{bytes:02x?}: expected no finding, got {found:?}"
            ),
        }
    }
}
