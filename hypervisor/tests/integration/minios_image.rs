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
use object::elf::{EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endian, Endianness};

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

/// The image booted for real (`vmm --stdio`), for what only minios decides:
/// autorun, line editing, the memory figures, exception reports.
mod booted {
    use std::io::{Read, Write};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
    use std::time::{Duration, Instant};

    const T: Duration = Duration::from_secs(60);

    /// A `vmm --stdio` running minios, its console on pipes.
    struct Guest {
        child: Child,
        stdin: ChildStdin,
        output: Receiver<Vec<u8>>,
        seen: String,
    }

    impl Guest {
        fn boot(name: &str, args: &[&str]) -> Guest {
            let mut child = Command::new(env!("CARGO_BIN_EXE_vmm"))
                .args([
                    "--name",
                    name,
                    "--domid",
                    "9",
                    "--stdio",
                    "--exit-on-shutdown",
                ])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start vmm");
            let stdin = child.stdin.take().expect("piped stdin");
            let mut stdout = child.stdout.take().expect("piped stdout");
            let (tx, output) = channel();
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n @ 1..) = stdout.read(&mut buf) {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
            Guest {
                child,
                stdin,
                output,
                seen: String::new(),
            }
        }

        fn send(&mut self, text: &str) {
            self.stdin
                .write_all(text.as_bytes())
                .expect("write to the console");
        }

        /// Console output up to and including `pattern` (consumed).
        fn expect(&mut self, pattern: &str) -> String {
            let deadline = Instant::now() + T;
            loop {
                if let Some(at) = self.seen.find(pattern) {
                    let rest = self.seen.split_off(at + pattern.len());
                    return std::mem::replace(&mut self.seen, rest);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match self.output.recv_timeout(left) {
                    Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                    Err(RecvTimeoutError::Timeout) => {
                        panic!(
                            "no {pattern:?} on the console within {T:?}; got {:?}",
                            self.seen
                        )
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        panic!("console closed before {pattern:?}; got {:?}", self.seen)
                    }
                }
            }
        }

        /// The exit status, once the VMM exits on its own.
        fn wait_exit(&mut self) -> std::process::ExitStatus {
            let deadline = Instant::now() + T;
            loop {
                if let Some(status) = self.child.try_wait().expect("poll vmm") {
                    return status;
                }
                assert!(Instant::now() < deadline, "vmm still running after {T:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    impl Drop for Guest {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Guest {
        /// Run `command` and return its output (up to the next prompt).
        fn run(&mut self, command: &str, prompt: &str) -> String {
            self.send(&format!("{command}\n"));
            self.expect(&format!("{command}\r\n"));
            let out = self.expect(prompt);
            out[..out.len() - prompt.len()].to_string()
        }

        /// `free` as (total, used, free) KiB.
        fn free(&mut self, prompt: &str) -> (u64, u64, u64) {
            let out = self.run("free", prompt);
            let numbers: Vec<u64> = out
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().expect("digits"))
                .collect();
            assert!(
                out.starts_with("Mem: total "),
                "unexpected free output {out:?}"
            );
            match numbers[..] {
                [total, used, free, ..] => (total, used, free),
                _ => panic!("unexpected free output {out:?}"),
            }
        }
    }

    #[test]
    fn autorun_line_editing_memory_sleep_and_poweroff() {
        if !hypervisor::require_kvm() {
            return;
        }
        let cmdline = "autorun=echo auto run; uname";
        let mut g = Guest::boot("shell", &["--memory", "16", "--cmdline", cmdline]);
        let banner = g.expect("minios: 1/1 vCPUs online\r\n");
        assert!(
            banner.contains("minios 0.1.0 (guest ABI v2) booting\r\n"),
            "{banner}"
        );
        let config = format!("minios: domain shell id 9, 16 MiB, 1 vCPUs, cmdline '{cmdline}'");
        assert!(banner.contains(&config), "{banner}");
        // Autorun commands are shown after a prompt and run before the first
        // interactive prompt.
        let prompt = "minios@shell# ";
        g.expect("minios@shell# echo auto run\r\nauto run\r\n");
        g.expect("minios@shell# uname\r\nminios 0.1.0 x86_64 guest-abi-2\r\n");
        g.expect(prompt);

        // DEL and BS erase; CRLF is one Enter.
        g.send("ab\x7fc\x08d\r\n");
        g.expect("minios: unknown command 'ad' (try help)\r\n");
        g.expect(prompt);

        let (total, used, free) = g.free(prompt);
        assert_eq!(total, 16 * 1024, "free reports all of guest RAM");
        assert_eq!(used + free, total);
        assert!(
            used > 1024,
            "the kernel above 1 MiB counts as used ({used} KiB)"
        );
        assert_eq!(g.run("mem 4", prompt), "mem: touched 4 MiB\r\n");
        let (_, used_4, _) = g.free(prompt);
        assert_eq!(used_4, used + 4 * 1024, "mem 4 adds 4 MiB to used");
        assert_eq!(g.run("mem 0", prompt), "mem: touched 0 MiB\r\n");
        assert_eq!(g.free(prompt).1, used, "mem 0 gives the pool back");
        let refused = g.run("mem 64", prompt);
        assert!(refused.starts_with("mem: only "), "{refused}");

        // The guest's own clock: after `sleep 1`, uptime is at least a second.
        assert_eq!(g.run("sleep 1", prompt), "");
        let uptime = g.run("uptime", prompt);
        let secs: f64 = uptime
            .trim()
            .strip_prefix("up ")
            .and_then(|s| s.strip_suffix(" s"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected uptime output {uptime:?}"));
        assert!(secs >= 1.0, "uptime {secs} s after sleep 1");

        g.send("poweroff\n");
        g.expect("minios: poweroff\r\n");
        assert!(
            g.wait_exit().success(),
            "poweroff ends the VMM with success"
        );
    }

    #[test]
    fn a_cpu_exception_is_reported_and_ends_the_domain_as_crashed() {
        if !hypervisor::require_kvm() {
            return;
        }
        let mut g = Guest::boot("faulty", &["--memory", "16"]);
        g.expect("minios@faulty# ");
        g.send("crash fault\n");
        g.expect("minios: crash requested (page fault)\r\n");
        let report = g.expect("\r\n");
        assert!(
            report.starts_with("minios: vCPU 0: exception 14 (page fault) at rip 0x"),
            "{report}"
        );
        assert!(
            report.contains("cr2 0x7f0000000000"),
            "the faulting address is reported: {report}"
        );
        assert!(
            report.contains("error 0x2,"),
            "a write to a missing page: {report}"
        );
        assert!(
            !g.wait_exit().success(),
            "a crashed domain does not end with success"
        );
    }

    #[test]
    fn ctrl_c_stops_long_commands_and_typed_ahead_input_is_kept() {
        if !hypervisor::require_kvm() {
            return;
        }
        let prompt = "minios@busy# ";
        let mut g = Guest::boot("busy", &["--memory", "16", "--vcpus", "2"]);
        g.expect(prompt);
        // Input typed during a burn waits for it.
        g.send("burn 1\nuname\n");
        g.expect("burn: 2 vCPUs for 1 s\r\nburn: done\r\n");
        g.expect("uname\r\nminios 0.1.0 x86_64 guest-abi-2\r\n");
        g.expect(prompt);
        // Ctrl-C ends a burn, a sleep and a spew long before their end;
        // what is typed after it still runs.
        g.send("burn 3600\n");
        g.expect("burn: 2 vCPUs for 3600 s\r\n");
        g.send("\x03echo after burn\n");
        g.expect("^C\r\nburn: interrupted\r\n");
        g.expect("after burn\r\n");
        g.expect(prompt);
        g.send("sleep 3600\n");
        g.expect("sleep 3600\r\n");
        g.send("\x03echo after sleep\n");
        g.expect("^C\r\n");
        g.expect("after sleep\r\n");
        g.send("spew 1000000\n");
        g.expect("0123456789");
        g.send("\x03");
        g.expect("^C\r\nspew: interrupted\r\n");
        g.expect(prompt);
        g.send("halt\n");
        g.expect("minios: halt\r\n");
        assert!(g.wait_exit().success());
    }
}
