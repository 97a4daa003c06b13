/*
 * Xen ELF notes (xen/include/public/elfnote.h): name "Xen", 4-byte aligned.
 * PV needs LOADER "generic" and XEN_VERSION "xen-3.0"; PVH needs only
 * PHYS32_ENTRY. SUPPORTED_FEATURES carries XENFEAT_dom0 (bit 11), without
 * which Xen refuses to start the image as dom0.
 */
    .macro XEN_NOTE type, desc:vararg
    .p2align 2
    .long 4                         /* namesz */
    .long 662f - 661f               /* descsz */
    .long \type
    .asciz "Xen"
    .p2align 2
661:
    \desc
662:
    .p2align 2
    .endm

    .section .note.Xen, "a", @note
    XEN_NOTE 6,  .asciz "rt"                    /* GUEST_OS */
    XEN_NOTE 7,  .asciz "0.1"                   /* GUEST_VERSION */
    XEN_NOTE 5,  .asciz "xen-3.0"               /* XEN_VERSION */
    XEN_NOTE 8,  .asciz "generic"               /* LOADER */
    XEN_NOTE 3,  .quad 0                        /* VIRT_BASE */
    XEN_NOTE 4,  .quad 0                        /* PADDR_OFFSET */
    XEN_NOTE 1,  .quad pv_start64               /* ENTRY */
    XEN_NOTE 2,  .quad HYPERCALL_PAGE           /* HYPERCALL_PAGE */
    XEN_NOTE 10, .asciz "!writable_page_tables" /* FEATURES */
    XEN_NOTE 17, .long (1 << 11)                /* SUPPORTED_FEATURES: dom0 */
    XEN_NOTE 18, .long pvh_start32              /* PHYS32_ENTRY */
