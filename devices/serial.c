/* SPDX-License-Identifier: MIT */
/* 16550A UART (see serial.h). */
#include "devices/serial.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Register offsets */
enum {
    R_RBR_THR = 0,
    R_IER = 1,
    R_IIR_FCR = 2,
    R_LCR = 3,
    R_MCR = 4,
    R_LSR = 5,
    R_MSR = 6,
    R_SCR = 7
};

#define LCR_DLAB 0x80
#define IER_RDI 0x01  /* received data available */
#define IER_THRI 0x02 /* THR empty */
#define IER_RLSI 0x04 /* receiver line status */
#define IER_MSI 0x08  /* modem status */
#define IER_MASK 0x0f
#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_KEEP 0xc9 /* trigger level, DMA mode, enable */
#define LSR_DR 0x01
#define LSR_ERRORS 0x1e /* OE, PE, FE, BI */
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_KEEP 0x7f
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

static unsigned fifo_cap(const SerialState *s)
{
    return (s->fcr & FCR_ENABLE) ? SERIAL_FIFO_SIZE : 1;
}

/* The interrupt identification (without FIFO bits); lock held. */
static uint8_t pending_iir(const SerialState *s)
{
    if ((s->ier & IER_RLSI) && (s->lsr & LSR_ERRORS))
        return IIR_RLSI;
    if ((s->ier & IER_RDI) && s->rx_count)
        return IIR_RDI;
    if ((s->ier & IER_THRI) && s->thr_ipending)
        return IIR_THRI;
    if ((s->ier & IER_MSI) && (s->msr & 0x0f))
        return IIR_MSI;
    return IIR_NO_INT;
}

/* Recomputes LSR.DR and drives the interrupt line; lock held. */
static void update(SerialState *s)
{
    if (s->rx_count)
        s->lsr |= LSR_DR;
    else
        s->lsr &= (uint8_t)~LSR_DR;
    int level = pending_iir(s) != IIR_NO_INT;
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_line_set(&s->irq, level);
    }
}

static void rx_push(SerialState *s, uint8_t c)
{
    if (s->rx_count >= fifo_cap(s)) {
        s->lsr |= 0x02; /* overrun */
        s->rx_dropped++;
        return;
    }
    s->rx_fifo[(s->rx_head + s->rx_count) % SERIAL_FIFO_SIZE] = c;
    s->rx_count++;
    s->rx_bytes++;
}

static uint8_t rx_pop(SerialState *s)
{
    if (!s->rx_count)
        return 0;
    uint8_t c = s->rx_fifo[s->rx_head];
    s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_SIZE;
    s->rx_count--;
    return c;
}

static void rx_clear(SerialState *s)
{
    s->rx_head = 0;
    s->rx_count = 0;
}

static void transmit(SerialState *s, uint8_t c)
{
    s->tx_bytes++;
    if (s->mcr & MCR_LOOP) {
        rx_push(s, c);
        return;
    }
    if (s->out_fd < 0)
        return;
    for (;;) {
        ssize_t n = write(s->out_fd, &c, 1);
        if (n == 1 || (n < 0 && errno != EINTR))
            return;
    }
}

static uint8_t msr_value(const SerialState *s)
{
    if (!(s->mcr & MCR_LOOP))
        return s->msr;
    uint8_t m = s->msr & 0x0f;
    if (s->mcr & MCR_RTS)
        m |= MSR_CTS;
    if (s->mcr & MCR_DTR)
        m |= MSR_DSR;
    if (s->mcr & MCR_OUT1)
        m |= MSR_RI;
    if (s->mcr & MCR_OUT2)
        m |= MSR_DCD;
    return m;
}

static uint64_t serial_read(void *opaque, uint64_t addr, unsigned size)
{
    SerialState *s = opaque;
    uint8_t v = 0xff;

    pthread_mutex_lock(&s->lock);
    switch (addr) {
    case R_RBR_THR:
        v = (s->lcr & LCR_DLAB) ? (uint8_t)s->divider : rx_pop(s);
        break;
    case R_IER:
        v = (s->lcr & LCR_DLAB) ? (uint8_t)(s->divider >> 8) : s->ier;
        break;
    case R_IIR_FCR:
        v = pending_iir(s);
        if (v == IIR_THRI)
            s->thr_ipending = false; /* reading IIR acknowledges THRI */
        if (s->fcr & FCR_ENABLE)
            v |= IIR_FIFO;
        break;
    case R_LCR:
        v = s->lcr;
        break;
    case R_MCR:
        v = s->mcr;
        break;
    case R_LSR:
        v = s->lsr;
        s->lsr &= (uint8_t)~LSR_ERRORS;
        break;
    case R_MSR:
        v = msr_value(s);
        s->msr &= 0xf0; /* reading clears the delta bits */
        break;
    case R_SCR:
        v = s->scr;
        break;
    }
    update(s);
    pthread_mutex_unlock(&s->lock);
    return v;
}

static void serial_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    SerialState *s = opaque;
    uint8_t v = (uint8_t)data;

    pthread_mutex_lock(&s->lock);
    switch (addr) {
    case R_RBR_THR:
        if (s->lcr & LCR_DLAB) {
            s->divider = (uint16_t)((s->divider & 0xff00) | v);
        } else {
            transmit(s, v);
            s->thr_ipending = true; /* THR is empty again at once */
        }
        break;
    case R_IER:
        if (s->lcr & LCR_DLAB) {
            s->divider = (uint16_t)((s->divider & 0x00ff) | (v << 8));
        } else {
            uint8_t old = s->ier;
            s->ier = v & IER_MASK;
            if (!(old & IER_THRI) && (s->ier & IER_THRI) && (s->lsr & LSR_THRE))
                s->thr_ipending = true;
        }
        break;
    case R_IIR_FCR:
        if ((v & FCR_ENABLE) != (s->fcr & FCR_ENABLE))
            rx_clear(s); /* toggling FIFO mode resets them */
        if (v & FCR_CLEAR_RX)
            rx_clear(s);
        s->fcr = v & FCR_KEEP;
        break;
    case R_LCR:
        s->lcr = v;
        break;
    case R_MCR:
        s->mcr = v & MCR_MASK;
        break;
    case R_SCR:
        s->scr = v;
        break;
    default: /* LSR, MSR: read only */
        break;
    }
    update(s);
    pthread_mutex_unlock(&s->lock);
}

static const MemoryRegionOps serial_ops = {
    .read = serial_read,
    .write = serial_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 1 },
    .impl = { .min_access_size = 1, .max_access_size = 1 },
};

static void reset_locked(SerialState *s)
{
    s->divider = 0x0c; /* 9600 baud */
    s->ier = 0;
    s->lcr = 0;
    s->mcr = MCR_OUT2;
    s->lsr = LSR_THRE | LSR_TEMT;
    s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
    s->scr = 0;
    s->fcr = 0;
    s->thr_ipending = false;
    rx_clear(s);
    update(s);
}

int serial_init(SerialState *s, MemoryContext *ctx, int out_fd, const IrqLine *irq)
{
    memset(s, 0, sizeof(*s));
    s->out_fd = out_fd;
    if (irq)
        s->irq = *irq;
    int r = pthread_mutex_init(&s->lock, NULL);
    if (r)
        return -r;
    r = memory_region_init_io(&s->io, ctx, &serial_ops, s, "serial", SERIAL_IO_SIZE);
    if (r < 0) {
        pthread_mutex_destroy(&s->lock);
        return r;
    }
    s->io_initialized = true;
    pthread_mutex_lock(&s->lock);
    reset_locked(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void serial_destroy(SerialState *s)
{
    if (!s->io_initialized)
        return;
    memory_region_destroy(&s->io);
    pthread_mutex_destroy(&s->lock);
    s->io_initialized = false;
}

void serial_reset(SerialState *s)
{
    pthread_mutex_lock(&s->lock);
    reset_locked(s);
    pthread_mutex_unlock(&s->lock);
}

MemoryRegion *serial_region(SerialState *s)
{
    return &s->io;
}

size_t serial_can_receive(SerialState *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = fifo_cap(s) - s->rx_count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t serial_receive(SerialState *s, const uint8_t *buf, size_t n)
{
    size_t done = 0;
    pthread_mutex_lock(&s->lock);
    while (done < n && s->rx_count < fifo_cap(s))
        rx_push(s, buf[done++]);
    update(s);
    pthread_mutex_unlock(&s->lock);
    return done;
}

static const StateField serial_fields[] = {
    STATE_U16(SerialStateData, divider),
    STATE_U8(SerialStateData, ier),
    STATE_U8(SerialStateData, lcr),
    STATE_U8(SerialStateData, mcr),
    STATE_U8(SerialStateData, lsr),
    STATE_U8(SerialStateData, msr),
    STATE_U8(SerialStateData, scr),
    STATE_U8(SerialStateData, fcr),
    STATE_U8(SerialStateData, thr_ipending),
    STATE_U8(SerialStateData, rx_count),
    STATE_U8_VARRAY(SerialStateData, rx_fifo, rx_count),
};
static const StateTable serial_table = STATE_TABLE(SerialStateData, serial_fields);
const StateSection serial_state_section = {
    "serial",
    SERIAL_STATE_MAGIC,
    SERIAL_STATE_VERSION,
    &serial_table,
};

int serial_save(SerialState *s, uint8_t **buf, size_t *len)
{
    SerialStateData st;
    pthread_mutex_lock(&s->lock);
    st.divider = s->divider;
    st.ier = s->ier;
    st.lcr = s->lcr;
    st.mcr = s->mcr;
    st.lsr = s->lsr;
    st.msr = s->msr;
    st.scr = s->scr;
    st.fcr = s->fcr;
    st.thr_ipending = s->thr_ipending;
    st.rx_count = (uint8_t)s->rx_count;
    for (unsigned i = 0; i < s->rx_count; i++)
        st.rx_fifo[i] = s->rx_fifo[(s->rx_head + i) % SERIAL_FIFO_SIZE];
    pthread_mutex_unlock(&s->lock);
    return state_save_section(&serial_state_section, &st, buf, len);
}

static int bad(char *err, size_t errlen, const char *what, unsigned v)
{
    return state_refuse(&serial_state_section, err, errlen, "%s (0x%x)", what, v);
}

/* The hand-written checks of a decoded state: 0 or -EINVAL with err. */
static int serial_check(const SerialStateData *st, char *err, size_t errlen)
{
    if (st->ier & ~IER_MASK)
        return bad(err, errlen, "reserved IER bits set", st->ier);
    if (st->mcr & ~MCR_MASK)
        return bad(err, errlen, "reserved MCR bits set", st->mcr);
    if (st->fcr & ~FCR_KEEP)
        return bad(err, errlen, "invalid FCR", st->fcr);
    if (st->lsr & ~LSR_KEEP)
        return bad(err, errlen, "invalid LSR", st->lsr);
    if (st->thr_ipending > 1)
        return bad(err, errlen, "invalid THR-interrupt flag", st->thr_ipending);
    if (st->rx_count > ((st->fcr & FCR_ENABLE) ? SERIAL_FIFO_SIZE : 1))
        return bad(err, errlen, "receive FIFO count too large", st->rx_count);
    if (!!(st->lsr & LSR_DR) != !!st->rx_count)
        return bad(err, errlen, "LSR.DR disagrees with the FIFO count", st->rx_count);
    return 0;
}

int serial_load(SerialState *s, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    SerialStateData st;
    int ret = state_load_section(&serial_state_section, buf, len, &st, err, errlen);
    if (ret < 0 || (ret = serial_check(&st, err, errlen)) < 0)
        return ret;
    pthread_mutex_lock(&s->lock);
    s->divider = st.divider;
    s->ier = st.ier;
    s->lcr = st.lcr;
    s->mcr = st.mcr;
    s->lsr = st.lsr;
    s->msr = st.msr;
    s->scr = st.scr;
    s->fcr = st.fcr;
    s->thr_ipending = st.thr_ipending;
    memcpy(s->rx_fifo, st.rx_fifo, st.rx_count);
    s->rx_head = 0;
    s->rx_count = st.rx_count;
    update(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

DEVICE_OPS_DEFINE(serial, SerialState, "serial");
