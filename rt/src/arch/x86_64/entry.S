/*
 * Entry points of the image (AT&T syntax, assembled by rustc through
 * global_asm!, so no curly braces in this file).
 *
 *   pvh_start32  Xen PVH domU and bare QEMU: 32-bit protected mode, paging off,
 *                ebx = physical address of struct hvm_start_info.
 *   pv_start64   Xen PV domU and dom0: long mode, ring 3, rsi = start_info
 *                (virtual), Xen's boot page tables (read-only to us), a
 *                one-page boot stack.
 * Both record the TSC first (boot_tsc: the "entry" of the boot timeline),
 * switch to our own stack and call into Rust, which never returns.
 */
    .set CR0_PE,          0x00000001
    .set CR0_MP,          0x00000002
    .set CR0_EM,          0x00000004
    .set CR0_NE,          0x00000020
    .set CR0_WP,          0x00010000
    .set CR0_PG,          0x80000000
    .set CR4_PAE,         0x00000020
    .set CR4_OSFXSR,      0x00000200
    .set CR4_OSXMMEXCPT,  0x00000400
    .set MSR_EFER,        0xC0000080
    .set EFER_LME,        0x00000100
    .set EFER_NXE,        0x00000800
    .set BOOT_STACK_SIZE, 0x20000
    .set HYPERVISOR_fpu_taskswitch, 5

    .section .text.boot, "ax", @progbits
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    mov  %ebx, %esi                 /* keep hvm_start_info */
    rdtsc
    mov  %eax, boot_tsc
    mov  %edx, boot_tsc + 4

    /* Zero .bss (the loaders already do; this makes no assumption). */
    mov  $__bss_start, %edi
    mov  $__bss_end, %ecx
    sub  %edi, %ecx
    shr  $2, %ecx
    xor  %eax, %eax
    rep stosl

    /* Identity map of the low 4 GiB with 2 MiB pages:
     * PML4[0] -> PDPT, PDPT[0..3] -> PD0..PD3, PDn[i] = (n GiB + i * 2 MiB) | P|RW|PS. */
    mov  $boot_pdpt, %eax
    or   $0x3, %eax
    mov  %eax, boot_pml4
    mov  $boot_pd, %eax
    or   $0x3, %eax
    mov  $boot_pdpt, %edi
    mov  $4, %ecx
1:  mov  %eax, (%edi)
    add  $0x1000, %eax
    add  $8, %edi
    loop 1b
    mov  $boot_pd, %edi
    mov  $0x83, %eax
    mov  $2048, %ecx
2:  mov  %eax, (%edi)
    add  $0x200000, %eax
    add  $8, %edi
    loop 2b

    lgdt boot_gdt_ptr
    mov  $boot_pml4, %eax
    mov  %eax, %cr3
    mov  %cr4, %eax
    or   $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    mov  %eax, %cr4
    mov  $MSR_EFER, %ecx
    rdmsr
    or   $(EFER_LME | EFER_NXE), %eax
    wrmsr
    mov  %cr0, %eax
    and  $(~CR0_EM), %eax
    or   $(CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG), %eax
    mov  %eax, %cr0
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    mov  $0x10, %eax
    mov  %eax, %ds
    mov  %eax, %es
    mov  %eax, %ss
    xor  %eax, %eax
    mov  %eax, %fs
    mov  %eax, %gs
    mov  $boot_stack_top, %rsp
    fninit
    mov  %esi, %edi                 /* zero-extends hvm_start_info */
    xor  %ebp, %ebp
    call rt_pvh_entry
    ud2

    .globl pv_start64
pv_start64:
    cld
    rdtsc
    shl  $32, %rdx
    or   %rdx, %rax
    mov  %rax, boot_tsc(%rip)
    lea  boot_stack_top(%rip), %rsp
    mov  %rsi, %r12                 /* keep start_info */
    /* Clear CR0.TS (HYPERVISOR_fpu_taskswitch(0)) before any SSE runs:
     * Rust code, and the precompiled core in particular, uses SSE. */
    xor  %edi, %edi
    call HYPERCALL_PAGE + HYPERVISOR_fpu_taskswitch * 32
    fninit
    mov  %r12, %rdi
    xor  %ebp, %ebp
    call rt_pv_entry
    ud2

/* The hypercall page: Xen fills it (PV: at build time, through the ELF note;
 * PVH: when the guest writes its address to the Xen MSR). It takes no bytes in
 * the image (zeroed by the loader, like .bss: an R-X segment of its own right
 * after the text, see image.ld); nothing calls it before Xen filled it
 * (HYPERVISOR is set after). Flagged "a", not "ax": its segment's flags make
 * it executable, and lld's --icf=all crashes on an executable section with no
 * bytes. */
    .section .hypercall_page, "a", @nobits
    .p2align 12
    .globl HYPERCALL_PAGE
HYPERCALL_PAGE:
    .skip 4096

    .section .rodata.boot, "a", @progbits
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff        /* 0x10: data, DPL 0 */
boot_gdt_end:
    .p2align 2
    .word 0
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .data.boot, "aw", @progbits
    .p2align 3
    .globl boot_tsc
boot_tsc:
    .quad 0

    .section .bss.boot, "aw", @nobits
    .p2align 12
    .globl boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    /* Left unmapped by the runtime's address space: an overflow of the boot
     * stack faults instead of overwriting the tables above. */
    .globl boot_stack_guard
boot_stack_guard:
    .skip 4096
    .globl boot_stack_bottom
boot_stack_bottom:
    .skip BOOT_STACK_SIZE
    .globl boot_stack_top
boot_stack_top:
