/*
 * Event upcalls and the idle stubs (see rt/src/event.rs).
 *
 * The red-zone rule: the precompiled `core` keeps data below rsp, so an event
 * must never be delivered onto a stack where Rust code is running. Upcalls
 * are therefore only ever enabled inside the two idle stubs below, which are
 * out-of-line functions with nothing live below their own rsp:
 *   PV:  rt_pv_block   SCHEDOP_block unmasks events atomically and blocks;
 *                      Xen delivers the callback on the way back, on this
 *                      stack (below rsp, 16-byte aligned); the stub masks
 *                      events again before it returns.
 *   PVH: rt_hvm_idle   sti; nop; hlt; cli. The callback vector's gate uses
 *                      its own IST stack, so the CPU switches stacks.
 * So the interrupted code is always one of these stubs (or the hypercall
 * page they call): the callbacks save the general registers (rax holds the
 * hypercall's result) but not the vector registers, which the stubs' callers
 * already treat as clobbered by the call.
 */
    .section .text.events, "ax", @progbits

    .macro SAVE_GPRS
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    .endm

    .macro RESTORE_GPRS
    pop  %r15
    pop  %r14
    pop  %r13
    pop  %r12
    pop  %r11
    pop  %r10
    pop  %r9
    pop  %r8
    pop  %rbp
    pop  %rdi
    pop  %rsi
    pop  %rdx
    pop  %rcx
    pop  %rbx
    pop  %rax
    .endm

    /* Runs rt_event_upcall(rdi) on a 16-byte aligned stack (general
     * registers saved by the caller; rbx is clobbered). */
    .macro CALL_UPCALL
    cld
    mov  %rsp, %rbx
    and  $-16, %rsp
    call rt_event_upcall
    mov  %rbx, %rsp
    .endm

/* PV event callback. Xen's frame: rcx r11 rip cs rflags rsp ss; events are
 * masked on entry. Returns with HYPERVISOR_iret, which restores the mask from
 * the frame's IF (set: events were enabled in the idle stub). */
    .globl pv_event_callback
pv_event_callback:
    pop  %rcx
    pop  %r11
    SAVE_GPRS
    xor  %edi, %edi                     /* in the idle stub (PV: always) */
    CALL_UPCALL
    RESTORE_GPRS
    pushq $0                            /* iret flags: not in a syscall */
    jmp  HYPERCALL_PAGE + {iret} * 32

/* PV failsafe callback: Xen could not return to the guest (bad segment or
 * iret frame). Frame: rcx r11 ds es fs gs rip cs rflags rsp ss. Fatal. */
    .globl pv_failsafe_callback
pv_failsafe_callback:
    mov  %rsp, %rdi
    and  $-16, %rsp
    call rt_failsafe
    ud2

/* PVH callback vector (IST stack; the CPU pushed ss rsp rflags cs rip). No
 * EOI: Xen injects it while vcpu_info.evtchn_upcall_pending is set, which
 * the handler clears before it looks at the bitmaps.
 *
 * Interrupts are on only inside rt_hvm_idle, so an upcall normally
 * interrupts the stub. It then resumes at the stub's end (its `ret`) with
 * interrupts off, on the stack the stub recorded: the events were handled,
 * the vCPU must not halt now (the lost wake-up `sti; hlt` guards against),
 * and one upcall ends the idle.
 *
 * Under nested virtualisation (Xen in QEMU TCG) the vector has been seen
 * to arrive a second time right at this entry, interrupts off: the CPU
 * then restarts the IST stack at its top and the second frame overwrites
 * the first — returning through it looped here forever (and, once, ended
 * in a triple fault). A frame whose rip is inside this handler is such a
 * repeat: the original came from the stub (nowhere else has interrupts
 * on), so it resumes the stub exactly as above. rdi tells rt_event_upcall
 * which case it was: 0 from the stub, 1 a repeat, 2 elsewhere — interrupts
 * on outside the stub (our defect) or injected while off (nested Xen does
 * that very rarely; the IST stack keeps the interrupted stack intact) —
 * then rsi and rdx are the interrupted rip and rsp, for the record. */
    /* Jumps to `target` if lo <= rax < hi (rcx clobbered). */
    .macro JUMP_IF_IN lo, hi, target
    lea  \lo(%rip), %rcx
    cmp  %rcx, %rax
    jb   77f
    lea  \hi(%rip), %rcx
    cmp  %rcx, %rax
    jb   \target
77:
    .endm

    .globl hvm_event_vector
hvm_event_vector:
    SAVE_GPRS
    mov  15*8(%rsp), %rax               /* the interrupted rip */
    xor  %edi, %edi
    JUMP_IF_IN rt_hvm_idle, rt_hvm_idle_end, 3f
    mov  $1, %edi
    JUMP_IF_IN hvm_event_vector, hvm_event_vector_end, 3f
    mov  $2, %edi                       /* elsewhere: return there */
    mov  %rax, %rsi                     /* where, for the record */
    mov  18*8(%rsp), %rdx
    jmp  1f
3:  lea  rt_hvm_idle_end(%rip), %rcx
    mov  %rcx, 15*8(%rsp)               /* resume at the stub's ret */
    andq $~0x200, 17*8(%rsp)            /* with IF clear */
    mov  rt_hvm_idle_rsp(%rip), %rcx
    mov  %rcx, 18*8(%rsp)               /* on the stub's stack */
1:
    CALL_UPCALL
    RESTORE_GPRS
    iretq
hvm_event_vector_end:

/* u64 rt_pv_block(u8 *upcall_mask): SCHEDOP_block with events enabled only
 * for the duration; returns the hypercall's result. */
    .globl rt_pv_block
rt_pv_block:
    push %rbx
    mov  %rdi, %rbx
    mov  ${block}, %edi
    xor  %esi, %esi
    call HYPERCALL_PAGE + {sched_op} * 32
    movb $1, (%rbx)                     /* events masked again */
    pop  %rbx
    ret

/* void rt_hvm_idle(void): halts with interrupts enabled. Not `sti; hlt`:
 * a hlt inside sti's one-instruction shadow has been seen to block the vCPU
 * for good under nested virtualisation while an upcall was pending (Xen
 * then sees interrupts as blocked and never kicks it again). Here the shadow
 * ends at the nop; an event that arrives before the hlt runs is handled
 * and skips it (see hvm_event_vector). */
    .globl rt_hvm_idle
    .globl rt_hvm_idle_hlt
rt_hvm_idle:
    mov  %rsp, rt_hvm_idle_rsp(%rip)
    sti
    nop
rt_hvm_idle_hlt:
    hlt
    cli
rt_hvm_idle_end:
    ret

    .section .bss.events, "aw", @nobits
    .balign 8
/* rsp inside rt_hvm_idle, for the callback vector's return. */
rt_hvm_idle_rsp:
    .quad 0
