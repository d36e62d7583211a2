//! x86-64 boot state: the GDT, identity page tables and the registers every
//! vCPU starts with (long mode at the kernel entry).
mod gdt;
mod paging;
mod regs;

pub use gdt::write_gdt;
pub use paging::{map_ram, write_page_tables};
pub use regs::{ArchError, setup_vcpu};
