! likwid_access.f90: Fortran interfaces to liblikwid_access (LIKWID 5's HPM access functions).
!
! Compile the module once with your program and link the library:
!   gfortran -c $(pkg-config --variable=includedir likwid-access)/likwid_access.f90
!   gfortran prog.f90 $(pkg-config --libs likwid-access)
!
! The C functions take unsigned 32-bit cpu and register numbers; Fortran has no unsigned
! integers, so they are integer(c_int32_t) here with the same bits. Write a register above
! 0x7FFFFFFF as int(z'C0010201', c_int32_t) (Fortran 2008 takes the bit pattern). Register
! values are integer(c_int64_t) with the bits of the C uint64_t.
!
! Every function returns 0 or a negative errno (-1 = -EPERM: denied by policy; see
! likwid_access.h for the full list), except HPMinitialized and HPMcheck (1 = yes).
module likwid_access
  use, intrinsic :: iso_c_binding, only: c_char, c_int32_t, c_int64_t, c_size_t
  implicit none
  private

  ! Access modes for HPMmode.
  integer(c_int32_t), parameter, public :: ACCESSMODE_PERF = -1
  integer(c_int32_t), parameter, public :: ACCESSMODE_DIRECT = 0
  integer(c_int32_t), parameter, public :: ACCESSMODE_DAEMON = 1
  ! Device index: the model-specific registers of a hardware thread.
  integer(c_int32_t), parameter, public :: MSR_DEV = 0

  public :: HPMmode, HPMinit, HPMinitialized, HPMaddThread, HPMfinalize
  public :: HPMread, HPMwrite, HPMcheck
  public :: HPMBatchOp, HPMbatch, HPMdaemonPid, HPMlastError

  ! Batches: many operations in one round trip (HPMbatch). HPMBatchOp matches the C struct.
  integer(c_int32_t), parameter, public :: HPM_BATCH_READ = 0
  integer(c_int32_t), parameter, public :: HPM_BATCH_WRITE = 1
  integer(c_int32_t), parameter, public :: HPM_BATCH_MAX = 65536

  type, bind(C) :: HPMBatchOp
    integer(c_int32_t) :: cpu = 0        ! hardware thread, as for HPMread
    integer(c_int32_t) :: dev = 0        ! MSR_DEV (or an uncore device index)
    integer(c_int32_t) :: reg = 0        ! register
    integer(c_int32_t) :: op = 0         ! HPM_BATCH_READ or HPM_BATCH_WRITE
    integer(c_int64_t) :: data = 0       ! in: value to write; out: value read
    integer(c_int32_t) :: result = 0     ! out: 0 or a negative errno, as HPMread/HPMwrite
    integer(c_int32_t) :: reserved = 0
  end type HPMBatchOp

  interface
    ! void HPMmode(int32_t mode): ACCESSMODE_DAEMON (default) or ACCESSMODE_DIRECT.
    subroutine HPMmode(mode) bind(C, name="HPMmode")
      import :: c_int32_t
      integer(c_int32_t), value :: mode
    end subroutine HPMmode

    ! int32_t HPMinit(void): 0.
    function HPMinit() result(rc) bind(C, name="HPMinit")
      import :: c_int32_t
      integer(c_int32_t) :: rc
    end function HPMinit

    ! int32_t HPMinitialized(void): 1 between HPMinit and HPMfinalize.
    function HPMinitialized() result(yes) bind(C, name="HPMinitialized")
      import :: c_int32_t
      integer(c_int32_t) :: yes
    end function HPMinitialized

    ! int32_t HPMaddThread(uint32_t cpu_id): the first call starts likwid-accessD.
    function HPMaddThread(cpu_id) result(rc) bind(C, name="HPMaddThread")
      import :: c_int32_t
      integer(c_int32_t), value :: cpu_id
      integer(c_int32_t) :: rc
    end function HPMaddThread

    ! void HPMfinalize(void): ends the session; the daemon is reaped.
    subroutine HPMfinalize() bind(C, name="HPMfinalize")
    end subroutine HPMfinalize

    ! int32_t HPMread(uint32_t cpu_id, PciDeviceIndex dev, uint32_t reg, uint64_t *data)
    function HPMread(cpu_id, dev, reg, data) result(rc) bind(C, name="HPMread")
      import :: c_int32_t, c_int64_t
      integer(c_int32_t), value :: cpu_id, dev, reg
      integer(c_int64_t), intent(out) :: data
      integer(c_int32_t) :: rc
    end function HPMread

    ! int32_t HPMwrite(uint32_t cpu_id, PciDeviceIndex dev, uint32_t reg, uint64_t data):
    ! bits outside the register's write mask keep their value.
    function HPMwrite(cpu_id, dev, reg, data) result(rc) bind(C, name="HPMwrite")
      import :: c_int32_t, c_int64_t
      integer(c_int32_t), value :: cpu_id, dev, reg
      integer(c_int64_t), value :: data
      integer(c_int32_t) :: rc
    end function HPMwrite

    ! int32_t HPMcheck(PciDeviceIndex dev, uint32_t cpu_id): 1 when usable.
    function HPMcheck(dev, cpu_id) result(yes) bind(C, name="HPMcheck")
      import :: c_int32_t
      integer(c_int32_t), value :: dev, cpu_id
      integer(c_int32_t) :: yes
    end function HPMcheck
  end interface

  interface
    ! int32_t HPMbatch(HPMBatchOp *ops, uint32_t count): runs the operations in order in one
    ! round trip; returns the number of failed ones, or a negative errno for the whole call.
    function HPMbatch(ops, count) result(failed) bind(C, name="HPMbatch")
      import :: c_int32_t, HPMBatchOp
      type(HPMBatchOp), intent(inout) :: ops(*)
      integer(c_int32_t), value :: count
      integer(c_int32_t) :: failed
    end function HPMbatch

    ! int32_t HPMdaemonPid(void): the serving daemon's pid, 0 if none.
    function HPMdaemonPid() result(pid) bind(C, name="HPMdaemonPid")
      import :: c_int32_t
      integer(c_int32_t) :: pid
    end function HPMdaemonPid

    ! size_t HPMlastError(char *buf, size_t len): why this thread's last failed call failed,
    ! NUL-terminated in buf (at most len-1 characters); returns the message's full length,
    ! 0 if no call failed. The library prints nothing unless LIKWID_ACCESS_VERBOSE=1.
    !   character(kind=c_char) :: msg(256); n = HPMlastError(msg, size(msg, kind=c_size_t))
    function HPMlastError(buf, len) result(n) bind(C, name="HPMlastError")
      import :: c_char, c_size_t
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_size_t), value :: len
      integer(c_size_t) :: n
    end function HPMlastError
  end interface
end module likwid_access
