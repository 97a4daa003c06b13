/*
 * Exception entry stubs for both boot modes. Every exception is fatal for now:
 * the stub builds a uniform frame and calls rt_fatal_trap(&frame), which
 * reports and shuts the domain down.
 *
 * Frame passed to Rust (lowest address first):
 *   vector, error code (0 if the CPU pushes none), rip, cs, rflags, rsp, ss
 * PVH: the CPU pushes [error] rip cs rflags rsp ss on the IST stack.
 * PV:  Xen pushes rcx r11 [error] rip cs rflags rsp ss on the current stack;
 *      the pv_ stubs pop rcx/r11 first, then share the PVH stubs.
 */
    /* A vector's PV stub: drop the rcx/r11 Xen pushed, go to its PVH stub. */
    .macro PV_TRAP vec
pv_trap_stub_\vec:
    pop  %rcx
    pop  %r11
    jmp  trap_stub_\vec
    .endm

    .macro TRAP_NOERR vec
    .globl trap_stub_\vec
trap_stub_\vec:
    pushq $0
    pushq $\vec
    jmp  trap_common
    PV_TRAP \vec
    .endm

    .macro TRAP_ERR vec
    .globl trap_stub_\vec
trap_stub_\vec:
    pushq $\vec
    jmp  trap_common
    PV_TRAP \vec
    .endm

    .section .text.traps, "ax", @progbits
    TRAP_NOERR 0
    TRAP_NOERR 1
    TRAP_NOERR 2
    TRAP_NOERR 3
    TRAP_NOERR 4
    TRAP_NOERR 5
    TRAP_NOERR 6
    TRAP_NOERR 7
    TRAP_ERR   8
    TRAP_NOERR 9
    TRAP_ERR   10
    TRAP_ERR   11
    TRAP_ERR   12
    TRAP_ERR   13
    TRAP_ERR   14
    TRAP_NOERR 15
    TRAP_NOERR 16
    TRAP_ERR   17
    TRAP_NOERR 18
    TRAP_NOERR 19
    TRAP_NOERR 20
    TRAP_ERR   21

trap_common:
    cld
    /* CR2 first, before anything can fault or exit to the hypervisor.
     * (A PV kernel's mov from CR2 is emulated by Xen; it is only used
     * as a fallback there.) */
    mov  %cr2, %rax
    mov  %rax, trap_cr2(%rip)
    mov  %rsp, %rdi
    and  $-16, %rsp
    call rt_fatal_trap
    ud2

    .section .bss.traps, "aw", @nobits
    .p2align 3
    .globl trap_cr2
trap_cr2:
    .skip 8

    .section .rodata.traps, "a", @progbits
    .p2align 3
    .globl trap_stubs
trap_stubs:
    .quad trap_stub_0, trap_stub_1, trap_stub_2, trap_stub_3, trap_stub_4, trap_stub_5
    .quad trap_stub_6, trap_stub_7, trap_stub_8, trap_stub_9, trap_stub_10, trap_stub_11
    .quad trap_stub_12, trap_stub_13, trap_stub_14, trap_stub_15, trap_stub_16, trap_stub_17
    .quad trap_stub_18, trap_stub_19, trap_stub_20, trap_stub_21
    .globl pv_trap_stubs
pv_trap_stubs:
    .quad pv_trap_stub_0, pv_trap_stub_1, pv_trap_stub_2, pv_trap_stub_3, pv_trap_stub_4
    .quad pv_trap_stub_5, pv_trap_stub_6, pv_trap_stub_7, pv_trap_stub_8, pv_trap_stub_9
    .quad pv_trap_stub_10, pv_trap_stub_11, pv_trap_stub_12, pv_trap_stub_13, pv_trap_stub_14
    .quad pv_trap_stub_15, pv_trap_stub_16, pv_trap_stub_17, pv_trap_stub_18, pv_trap_stub_19
    .quad pv_trap_stub_20, pv_trap_stub_21
