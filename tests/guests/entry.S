/* SPDX-License-Identifier: MIT */
/*
 * PVH entry stub of every tiny guest.
 *
 * Entered per the PVH boot ABI: 32-bit protected mode, paging off, flat
 * 4 GiB code/data segments, EBX = start_info (unused).  Page tables, GDT and
 * TSS are static data (CPL0 code is emulated instruction by instruction on
 * PVM, so the stub does as little as possible): it loads the GDT, enables
 * PAE, long mode and paging, loads TR, calls guest_kernel_main() at CPL0 if
 * the guest has one, then iretq's to CPL3 (IOPL 3) and calls guest_main().
 * The APs (started by guest_start_aps(), smp.c) come in through the
 * real-mode ap_trampoline below and share the GDT, TSS and page tables.
 */
#include "devices/testdev-ports.h"

#define SEL_CODE32   0x08
#define SEL_DATA     0x10
#define SEL_CODE64   0x18
#define SEL_UDATA    0x20
#define SEL_UCODE64  0x28
#define SEL_TSS      0x30

#define TSS_IOMAP_BASE 0x68
/* 0x68 + 8 KiB bitmap + one more zero byte + the 0xff end byte.  A word or
 * dword access that wraps past port 0xffff (inw 0xffff, inl 0xfffd) has its
 * permission checked against bits 0x10000.. of the bitmap, i.e. the byte
 * after the 8 KiB: that byte is 0 here so such accesses are allowed like
 * every other (the SDM's bitmap check, which PVM applies at CPL3 even with
 * IOPL 3; hardware with IOPL 3 never reads the bitmap). */
#define TSS_LIMIT      0x2069

/* ---- PVH note: XEN_ELFNOTE_PHYS32_ENTRY (18), owner "Xen" ---- */
        .section .note.Xen, "a", @note
        .p2align 2
        .long 4                 /* namesz */
        .long 4                 /* descsz */
        .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .long pvh_entry

/* ---- 32-bit entry ---- */
        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        cli
        lgdtl gdt_desc
        lidtl idt_desc                  /* limit 0: any exception triple-faults */
        movl $SEL_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl $kstack_top, %esp

        /* Patch the TSS base into its descriptor (no link-time shifts). */
        movl $tss, %eax
        movw %ax, gdt_tss + 2
        shrl $16, %eax
        movb %al, gdt_tss + 4
        movb %ah, gdt_tss + 7

        movl %cr4, %eax
        orl $0x20, %eax                 /* PAE */
        movl %eax, %cr4
        movl $pml4, %eax
        movl %eax, %cr3
        movl $0xc0000080, %ecx          /* EFER */
        rdmsr
        orl $0x100, %eax                /* LME */
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax           /* PG | PE */
        movl %eax, %cr0
        ljmpl $SEL_CODE64, $long_entry

/* ---- 64-bit, CPL0 ---- */
        .code64
long_entry:
        movl $SEL_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        movw $SEL_TSS, %ax
        ltr %ax
        movq $kstack_top, %rsp

        movq $guest_kernel_main, %rax   /* weak: 0 if the guest has none */
        testq %rax, %rax
        jz 1f
        call *%rax
1:
        pushq $(SEL_UDATA | 3)          /* SS */
        pushq $ustack_top               /* RSP */
        pushq $0x3002                   /* RFLAGS: IOPL 3, IF off */
        pushq $(SEL_UCODE64 | 3)        /* CS */
        pushq $user_entry               /* RIP */
        iretq

/* ---- 64-bit, CPL3 ---- */
user_entry:
        call guest_main
        movl %eax, %edi
        call guest_exit                 /* does not return */
        ud2

        .weak guest_kernel_main

/* ---- AP startup (guest_start_aps() in smp.c) ----
 *
 * An AP leaves wait-for-SIPI in real mode at CS = vector << 8, IP = 0.
 * guest_start_aps() copies [ap_trampoline, ap_trampoline_end) to the page
 * of that vector (GUEST_AP_TRAMPOLINE), so the blob addresses its own data
 * CS-relative and jumps to link-time addresses only.  It goes from real
 * mode straight to long mode (PE and PG set by one MOV to CR0, then a far
 * jump to the 64-bit code segment), with the BSP's GDT, a null IDT (any
 * exception is a triple fault) and the BSP's page tables; then it loads TR
 * with the BSP's TSS (shared: its I/O bitmap opens every port at CPL3, and
 * RSP0 is never used since there is no IDT), and iretq's to CPL3, IOPL 3
 * through ap_iret_frame, whose RSP the BSP set to this AP's stack.  Every
 * instruction up to the iretq is emulated on PVM: keep it short.
 *
 * One AP at a time: ap_iret_frame is shared and the TSS descriptor's busy
 * bit (set by every LTR) is cleared here before LTR, so the BSP starts the
 * next AP only after this one checked in at CPL3 (guest_ap_start). */
        .section .rodata.ap_trampoline, "a"
        .code16
        .globl ap_trampoline, ap_trampoline_end
ap_trampoline:
        lidtl %cs:(ap_tramp_idtr - ap_trampoline)
        lgdtl %cs:(ap_tramp_gdtr - ap_trampoline)
        movl $0x20, %eax                /* PAE */
        movl %eax, %cr4
        movl $pml4, %eax
        movl %eax, %cr3
        movl $0xc0000080, %ecx          /* EFER */
        rdmsr
        orl $0x100, %eax                /* LME */
        wrmsr
        movl $0x80000011, %eax          /* PG | ET | PE (CD, NW off) */
        movl %eax, %cr0
        ljmpl $SEL_CODE64, $ap_long_entry
        .p2align 2
ap_tramp_gdtr:
        .word gdt_end - gdt - 1
        .long gdt
ap_tramp_idtr:
        .word 0                         /* limit 0, like the BSP's */
        .long 0
ap_trampoline_end:

        .section .text.entry, "ax"
        .code64
ap_long_entry:
        andb $0xfd, gdt_tss + 5         /* busy -> available, for LTR */
        movw $SEL_TSS, %ax
        ltr %ax
        movl $ap_iret_frame, %esp
        iretq

/* ---- descriptor tables ---- */
        .section .data.tables, "aw"
        .p2align 4
gdt:
        .quad 0
        .quad 0x00cf9b000000ffff        /* 0x08 code32, DPL0 */
        .quad 0x00cf93000000ffff        /* 0x10 data, DPL0 */
        .quad 0x00af9b000000ffff        /* 0x18 code64, DPL0 */
        .quad 0x00cff3000000ffff        /* 0x20 data, DPL3 */
        .quad 0x00affb000000ffff        /* 0x28 code64, DPL3 */
gdt_tss:                                /* 0x30 64-bit TSS, available */
        .word TSS_LIMIT & 0xffff
        .word 0                         /* base 15:0 (patched) */
        .byte 0                         /* base 23:16 (patched) */
        .byte 0x89                      /* present, DPL0, type 9 */
        .byte (TSS_LIMIT >> 16) & 0xf
        .byte 0                         /* base 31:24 (patched) */
        .long 0                         /* base 63:32 */
        .long 0
gdt_end:
        .p2align 3
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt

idt_desc:
        .word 0
        .long 0

/* The AP's way to CPL3 (see ap_long_entry); guest_start_aps sets the RSP. */
        .p2align 3
        .globl ap_iret_frame
ap_iret_frame:
        .quad guest_ap_start            /* RIP (smp.c) */
        .quad SEL_UCODE64 | 3           /* CS */
        .quad 0x3002                    /* RFLAGS: IOPL 3, IF off */
        .quad 0                         /* RSP (set per AP) */
        .quad SEL_UDATA | 3             /* SS */

        .p2align 4
tss:
        .long 0
        .quad kstack_top                /* RSP0 */
        .fill 0x66 - 12, 1, 0
        .word TSS_IOMAP_BASE            /* I/O map base */
        .fill 8192, 1, 0                /* every port allowed */
        .byte 0                         /* ports 0x10000-0x10007: wrapping accesses */
        .byte 0xff                      /* end of bitmap */

/* ---- identity page tables: 4 GiB with 2 MiB pages, user RW ---- */
        .section .data.pagetables, "aw"
        .p2align 12
pml4:
        .quad pdpt + 0x7
        .fill 511, 8, 0
pdpt:
        .quad pd + 0x0000 + 0x7
        .quad pd + 0x1000 + 0x7
        .quad pd + 0x2000 + 0x7
        .quad pd + 0x3000 + 0x7
        .fill 508, 8, 0
pd:
        .set i, 0
        .rept 2048
        .quad (i << 21) | 0x87          /* present, RW, user, 2 MiB */
        .set i, i + 1
        .endr

/* ---- stacks ---- */
        .section .bss.stacks, "aw", @nobits
        .p2align 12
        .skip 16384
kstack_top:
        .skip 65536
ustack_top:
