! test_fortran: the Fortran module on the simulated zen4 machine: HPMinit, HPMaddThread,
! an HPMwrite/HPMread round trip on PERF_CTR0, -EPERM for a denied SYSCFG write and its
! HPMlastError message, HPMcheck, HPMfinalize. Exit code 0 on pass, 1 on failure (c-tests/run.sh conventions).
program test_fortran
  use, intrinsic :: iso_c_binding, only: c_char, c_int32_t, c_int64_t, c_null_char, c_size_t
  use likwid_access
  implicit none

  integer(c_int32_t), parameter :: PERF_CTR0 = int(z'C0010201', c_int32_t)
  integer(c_int32_t), parameter :: SYSCFG = int(z'C0010010', c_int32_t)
  integer(c_int32_t), parameter :: EPERM = 1
  integer(c_int64_t), parameter :: VALUE = int(z'0000123456789ABC', c_int64_t)
  integer(c_int32_t) :: rc, cpu
  integer(c_int64_t) :: got
  type(HPMBatchOp) :: ops(5)
  character(kind=c_char) :: msg(256)
  integer(c_size_t) :: msg_len
  character(len=256) :: text
  integer :: i
  integer :: failures = 0

  rc = HPMinit()
  call expect_rc('HPMinit', rc, 0_c_int32_t)
  if (HPMinitialized() /= 1) call fail('HPMinitialized is not 1 after HPMinit')
  do cpu = 0, 1
    rc = HPMaddThread(cpu)
    call expect_rc('HPMaddThread', rc, 0_c_int32_t)
  end do

  do cpu = 0, 1
    rc = HPMwrite(cpu, MSR_DEV, PERF_CTR0, VALUE + cpu)
    call expect_rc('HPMwrite PERF_CTR0', rc, 0_c_int32_t)
    got = -1
    rc = HPMread(cpu, MSR_DEV, PERF_CTR0, got)
    call expect_rc('HPMread PERF_CTR0', rc, 0_c_int32_t)
    if (got /= VALUE + cpu) then
      write (0, '(a,i0,a,z16.16,a,z16.16)') 'cpu ', cpu, ': read 0x', got, ', wrote 0x', VALUE + cpu
      failures = failures + 1
    end if
  end do

  rc = HPMwrite(0_c_int32_t, MSR_DEV, SYSCFG, 0_c_int64_t)
  call expect_rc('HPMwrite SYSCFG (denied)', rc, -EPERM)
  msg_len = HPMlastError(msg, size(msg, kind=c_size_t))
  text = ''
  do i = 1, size(msg)
    if (msg(i) == c_null_char) exit
    text(i:i) = msg(i)
  end do
  if (msg_len /= len_trim(text) .or. index(text, 'denied') == 0) &
    call fail('HPMlastError after the denied write: "'//trim(text)//'"')
  if (HPMcheck(MSR_DEV, 0_c_int32_t) /= 1) call fail('HPMcheck(MSR_DEV, 0) is not 1')

  ! A batch: write then read back PERF_CTR0 on both cpus, plus a denied SYSCFG write.
  ops(1) = HPMBatchOp(cpu=0, dev=MSR_DEV, reg=PERF_CTR0, op=HPM_BATCH_WRITE, data=VALUE + 10)
  ops(2) = HPMBatchOp(cpu=1, dev=MSR_DEV, reg=PERF_CTR0, op=HPM_BATCH_WRITE, data=VALUE + 11)
  ops(3) = HPMBatchOp(cpu=0, dev=MSR_DEV, reg=PERF_CTR0, op=HPM_BATCH_READ)
  ops(4) = HPMBatchOp(cpu=1, dev=MSR_DEV, reg=PERF_CTR0, op=HPM_BATCH_READ)
  ops(5) = HPMBatchOp(cpu=0, dev=MSR_DEV, reg=SYSCFG, op=HPM_BATCH_WRITE, data=1_c_int64_t)
  rc = HPMbatch(ops, 5_c_int32_t)
  call expect_rc('HPMbatch (failed operations)', rc, 1_c_int32_t)
  if (ops(3)%data /= VALUE + 10 .or. ops(4)%data /= VALUE + 11) call fail('HPMbatch read back wrong values')
  call expect_rc('HPMbatch SYSCFG result', ops(5)%result, -EPERM)
  if (HPMdaemonPid() <= 0) call fail('HPMdaemonPid is not a pid during the session')

  call HPMfinalize()
  if (HPMinitialized() /= 0) call fail('HPMinitialized is not 0 after HPMfinalize')

  if (failures > 0) then
    write (0, '(a,i0,a)') 'test_fortran: ', failures, ' check(s) failed'
    stop 1
  end if
  write (*, '(a)') 'test_fortran: all checks passed'

contains

  subroutine expect_rc(what, got_rc, want)
    character(*), intent(in) :: what
    integer(c_int32_t), intent(in) :: got_rc, want
    if (got_rc /= want) then
      write (0, '(a,a,i0,a,i0)') what, ' returned ', got_rc, ', expected ', want
      failures = failures + 1
    end if
  end subroutine expect_rc

  subroutine fail(why)
    character(*), intent(in) :: why
    write (0, '(a)') why
    failures = failures + 1
  end subroutine fail
end program test_fortran
