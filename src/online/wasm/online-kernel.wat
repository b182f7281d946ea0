;; Online CMD per-parameter kernels (src/online/kernel.ts updateFused / warmupSolve) in WebAssembly
;; with SIMD. The two float64 lanes of a vector are two parameters, so each parameter still gets
;; exactly the float64 operations of the JavaScript kernels in the same order (WebAssembly never
;; fuses or reorders float operations; demote/promote = Math.fround). Sums over parameters are
;; grouped as the JavaScript kernels group them: the warm-up error and the per-mode statistics in
;; parameter order, the update's per-checkpoint errors in two lanes (even and odd parameters)
;; added at the end. Results are bit-identical to the JavaScript kernels.
;;
;; Layout (byte offsets into the exported memory): values float32, row j at $w + $stride4·j;
;; mode u8 ($mb = 1) or u16; shift, S1, S2, P, a, b float64 per parameter. Per (checkpoint j,
;; mode m) one 64-byte record at $rec + 64·(j·M + m), so one address serves every constant a
;; lane needs:
;;   +0 r_m(j) − c_m   +8 R1   +16 1/varR   +24 r_m(j)   +32 constant (0/1)   +40 mean
;;   +48 c_m (shift)   +56 varR
;; Per checkpoint j a 48-byte record at $jrec + 48·j: +0 n, +8 1/n, +16 the error sums and +32
;; the norm sums, two lanes each (lane 0: even-numbered parameters of the range, lane 1: odd).
;; Per-mode count and Σ R² at $mc + 8·m, $r2s + 8·m.
(module
  (memory (export "memory") 1)

  ;; Set by each export before its loops; read by the helpers.
  (global $w (mut i32) (i32.const 0))
  (global $stride4 (mut i32) (i32.const 0))
  (global $K (mut i32) (i32.const 0))
  (global $recStep (mut i32) (i32.const 0))
  (global $mode (mut i32) (i32.const 0))
  (global $mb (mut i32) (i32.const 0))
  (global $shift (mut i32) (i32.const 0))
  (global $S1 (mut i32) (i32.const 0))
  (global $S2 (mut i32) (i32.const 0))
  (global $P (mut i32) (i32.const 0))
  (global $a (mut i32) (i32.const 0))
  (global $b (mut i32) (i32.const 0))
  (global $rec (mut i32) (i32.const 0))
  (global $jrec (mut i32) (i32.const 0))
  (global $anyConst (mut i32) (i32.const 0))
  (global $wantStats (mut i32) (i32.const 0))
  (global $mc (mut i32) (i32.const 0))
  (global $r2s (mut i32) (i32.const 0))

  (func $modeOf (param $i i32) (result i32)
    (if (result i32) (i32.eq (global.get $mb) (i32.const 1))
      (then (i32.load8_u (i32.add (global.get $mode) (local.get $i))))
      (else (i32.load16_u (i32.add (global.get $mode) (i32.shl (local.get $i) (i32.const 1)))))))

  ;; Per-mode statistics of one parameter at its last record $r: count 1, and R² = ρ² (0 for a
  ;; constant reference or a constant parameter), as solveParam computes it; nothing unless the
  ;; caller asked for statistics.
  (func $stat (param $m i32) (param $r i32) (param $n f64) (param $s1 f64) (param $s2 f64) (param $p f64)
    (local $r2 f64) (local $num f64) (local $varW f64) (local $m8 i32)
    (if (i32.eqz (global.get $wantStats)) (then (return)))
    (local.set $r2 (f64.const 0))
    (if (f64.eq (f64.load offset=32 (local.get $r)) (f64.const 0))
      (then
        (local.set $num (f64.sub (f64.mul (local.get $n) (local.get $p)) (f64.mul (local.get $s1) (f64.load offset=8 (local.get $r)))))
        (local.set $varW (f64.sub (f64.mul (local.get $n) (local.get $s2)) (f64.mul (local.get $s1) (local.get $s1))))
        (if (f64.gt (local.get $varW) (f64.const 0))
          (then
            (local.set $r2 (f64.min
              (f64.div (f64.mul (local.get $num) (local.get $num)) (f64.mul (local.get $varW) (f64.load offset=56 (local.get $r))))
              (f64.const 1)))))))
    (local.set $m8 (i32.shl (local.get $m) (i32.const 3)))
    (f64.store (i32.add (global.get $mc) (local.get $m8))
      (f64.add (f64.load (i32.add (global.get $mc) (local.get $m8))) (f64.const 1)))
    (f64.store (i32.add (global.get $r2s) (local.get $m8))
      (f64.add (f64.load (i32.add (global.get $r2s) (local.get $m8))) (local.get $r2))))

  ;; One parameter through the K new checkpoints, its error and norm terms to lane $lane (byte
  ;; offset 0 or 8) of the per-checkpoint sums: the odd one at the end of a range (lane 0), and
  ;; both parameters of a pair whose references are constant somewhere (the rare slow path).
  (func $update1 (param $i i32) (param $lane i32)
    (local $m i32) (local $i8 i32) (local $r i32) (local $jr i32) (local $off i32) (local $end i32)
    (local $c f64) (local $s1 f64) (local $s2 f64) (local $p f64) (local $ai f64) (local $bi f64)
    (local $x f64) (local $z f64) (local $n f64) (local $cm f64) (local $xbar f64) (local $R1 f64) (local $e f64)
    (local.set $m (call $modeOf (local.get $i)))
    (local.set $i8 (i32.shl (local.get $i) (i32.const 3)))
    (local.set $c (f64.load (i32.add (global.get $shift) (local.get $i8))))
    (local.set $s1 (f64.load (i32.add (global.get $S1) (local.get $i8))))
    (local.set $s2 (f64.load (i32.add (global.get $S2) (local.get $i8))))
    (local.set $p (f64.load (i32.add (global.get $P) (local.get $i8))))
    (local.set $r (i32.add (global.get $rec) (i32.shl (local.get $m) (i32.const 6))))
    (local.set $jr (i32.add (global.get $jrec) (local.get $lane)))
    (local.set $off (i32.add (global.get $w) (i32.shl (local.get $i) (i32.const 2))))
    (local.set $end (i32.add (local.get $off) (i32.mul (global.get $K) (global.get $stride4))))
    (loop $ckpts
      (local.set $x (f64.promote_f32 (f32.load (local.get $off))))
      (local.set $z (f64.sub (local.get $x) (local.get $c)))
      (local.set $s1 (f64.add (local.get $s1) (local.get $z)))
      (local.set $s2 (f64.add (local.get $s2) (f64.mul (local.get $z) (local.get $z))))
      (local.set $p (f64.add (local.get $p) (f64.mul (local.get $z) (f64.load (local.get $r)))))
      (local.set $n (f64.load (i32.sub (local.get $jr) (local.get $lane))))
      (if (f64.ne (f64.load offset=32 (local.get $r)) (f64.const 0))
        (then
          (local.set $cm (f64.load offset=40 (local.get $r)))
          (local.set $xbar (f64.add (local.get $c) (f64.div (local.get $s1) (local.get $n))))
          (local.set $ai (f64.div (f64.mul (local.get $cm) (local.get $xbar))
                                  (f64.add (f64.mul (local.get $cm) (local.get $cm)) (f64.const 1))))
          (local.set $bi (f64.div (local.get $xbar)
                                  (f64.add (f64.mul (local.get $cm) (local.get $cm)) (f64.const 1)))))
        (else
          (local.set $R1 (f64.load offset=8 (local.get $r)))
          (local.set $ai (f64.mul
            (f64.sub (f64.mul (local.get $n) (local.get $p)) (f64.mul (local.get $s1) (local.get $R1)))
            (f64.load offset=16 (local.get $r))))
          (local.set $bi (f64.sub
            (f64.add (f64.mul (f64.sub (local.get $s1) (f64.mul (local.get $ai) (local.get $R1))) (f64.load offset=8 (i32.sub (local.get $jr) (local.get $lane)))) (local.get $c))
            (f64.mul (local.get $ai) (f64.load offset=48 (local.get $r)))))))
      (local.set $e (f64.sub (local.get $x)
        (f64.add (f64.mul (f64.promote_f32 (f32.demote_f64 (local.get $ai))) (f64.load offset=24 (local.get $r)))
                 (f64.promote_f32 (f32.demote_f64 (local.get $bi))))))
      (f64.store offset=16 (local.get $jr) (f64.add (f64.load offset=16 (local.get $jr)) (f64.mul (local.get $e) (local.get $e))))
      (f64.store offset=32 (local.get $jr) (f64.add (f64.load offset=32 (local.get $jr)) (f64.mul (local.get $x) (local.get $x))))
      (local.set $off (i32.add (local.get $off) (global.get $stride4)))
      (local.set $r (i32.add (local.get $r) (global.get $recStep)))
      (local.set $jr (i32.add (local.get $jr) (i32.const 48)))
      (br_if $ckpts (i32.lt_u (local.get $off) (local.get $end))))
    (f64.store (i32.add (global.get $S1) (local.get $i8)) (local.get $s1))
    (f64.store (i32.add (global.get $S2) (local.get $i8)) (local.get $s2))
    (f64.store (i32.add (global.get $P) (local.get $i8)) (local.get $p))
    (f64.store (i32.add (global.get $a) (local.get $i8)) (local.get $ai))
    (f64.store (i32.add (global.get $b) (local.get $i8)) (local.get $bi))
    (call $stat (local.get $m) (i32.sub (local.get $r) (global.get $recStep)) (f64.load (i32.sub (i32.sub (local.get $jr) (local.get $lane)) (i32.const 48)))
      (local.get $s1) (local.get $s2) (local.get $p)))

  ;; Parameters $i and $i + 1 through the K new checkpoints, one per lane. Their error and norm
  ;; terms go to the two lanes of the per-checkpoint sums (lane 0: even-numbered parameters of
  ;; the range, lane 1: odd-numbered), which the caller adds at the end, as the JS kernel does.
  ;; The loop has no branch and no call, so its vectors stay in registers.
  (func $update2 (param $i i32)
    (local $m0 i32) (local $m1 i32) (local $i8 i32) (local $r0 i32) (local $r1 i32) (local $jr i32) (local $off i32) (local $end i32)
    (local $stride4 i32) (local $recStep i32)
    (local $c v128) (local $s1 v128) (local $s2 v128) (local $p v128) (local $x v128) (local $z v128)
    (local $R1 v128) (local $sh v128) (local $av v128) (local $bv v128) (local $e v128)
    (local $n f64)
    (if (i32.eq (global.get $mb) (i32.const 1))
      (then
        (local.set $m0 (i32.load8_u (i32.add (global.get $mode) (local.get $i))))
        (local.set $m1 (i32.load8_u offset=1 (i32.add (global.get $mode) (local.get $i)))))
      (else
        (local.set $m0 (i32.load16_u (i32.add (global.get $mode) (i32.shl (local.get $i) (i32.const 1)))))
        (local.set $m1 (i32.load16_u offset=2 (i32.add (global.get $mode) (i32.shl (local.get $i) (i32.const 1)))))))
    (local.set $i8 (i32.shl (local.get $i) (i32.const 3)))
    (local.set $c (v128.load (i32.add (global.get $shift) (local.get $i8))))
    (local.set $s1 (v128.load (i32.add (global.get $S1) (local.get $i8))))
    (local.set $s2 (v128.load (i32.add (global.get $S2) (local.get $i8))))
    (local.set $p (v128.load (i32.add (global.get $P) (local.get $i8))))
    (local.set $r0 (i32.add (global.get $rec) (i32.shl (local.get $m0) (i32.const 6))))
    (local.set $r1 (i32.add (global.get $rec) (i32.shl (local.get $m1) (i32.const 6))))
    ;; c_m is the same in every checkpoint's record.
    (local.set $sh (v128.load64_lane offset=48 1 (local.get $r1) (v128.load64_splat offset=48 (local.get $r0))))
    ;; A reference constant at some checkpoint of this call (rare): one parameter at a time.
    (if (i32.or
          (i32.load8_u (i32.add (global.get $anyConst) (local.get $m0)))
          (i32.load8_u (i32.add (global.get $anyConst) (local.get $m1))))
      (then
        (call $update1 (local.get $i) (i32.const 0))
        (call $update1 (i32.add (local.get $i) (i32.const 1)) (i32.const 8))
        (return)))
    (local.set $stride4 (global.get $stride4))
    (local.set $recStep (global.get $recStep))
    (local.set $jr (global.get $jrec))
    (local.set $off (i32.add (global.get $w) (i32.shl (local.get $i) (i32.const 2))))
    (local.set $end (i32.add (local.get $off) (i32.mul (global.get $K) (global.get $stride4))))
    (loop $ckpts
      (local.set $x (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $off))))
      (local.set $z (f64x2.sub (local.get $x) (local.get $c)))
      (local.set $s1 (f64x2.add (local.get $s1) (local.get $z)))
      (local.set $s2 (f64x2.add (local.get $s2) (f64x2.mul (local.get $z) (local.get $z))))
      (local.set $p (f64x2.add (local.get $p) (f64x2.mul (local.get $z)
        (v128.load64_lane 1 (local.get $r1) (v128.load64_splat (local.get $r0))))))
      (local.set $R1 (v128.load64_lane offset=8 1 (local.get $r1) (v128.load64_splat offset=8 (local.get $r0))))
      (local.set $av (f64x2.mul
        (f64x2.sub (f64x2.mul (v128.load64_splat (local.get $jr)) (local.get $p)) (f64x2.mul (local.get $s1) (local.get $R1)))
        (v128.load64_lane offset=16 1 (local.get $r1) (v128.load64_splat offset=16 (local.get $r0)))))
      (local.set $bv (f64x2.sub
        (f64x2.add (f64x2.mul (f64x2.sub (local.get $s1) (f64x2.mul (local.get $av) (local.get $R1))) (v128.load64_splat offset=8 (local.get $jr))) (local.get $c))
        (f64x2.mul (local.get $av) (local.get $sh))))
      (local.set $e (f64x2.sub (local.get $x)
        (f64x2.add (f64x2.mul (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero (local.get $av)))
                              (v128.load64_lane offset=24 1 (local.get $r1) (v128.load64_splat offset=24 (local.get $r0))))
                   (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero (local.get $bv))))))
      (v128.store offset=16 (local.get $jr) (f64x2.add (v128.load offset=16 (local.get $jr)) (f64x2.mul (local.get $e) (local.get $e))))
      (v128.store offset=32 (local.get $jr) (f64x2.add (v128.load offset=32 (local.get $jr)) (f64x2.mul (local.get $x) (local.get $x))))
      (local.set $off (i32.add (local.get $off) (local.get $stride4)))
      (local.set $r0 (i32.add (local.get $r0) (local.get $recStep)))
      (local.set $r1 (i32.add (local.get $r1) (local.get $recStep)))
      (local.set $jr (i32.add (local.get $jr) (i32.const 48)))
      (br_if $ckpts (i32.lt_u (local.get $off) (local.get $end))))
    (v128.store (i32.add (global.get $S1) (local.get $i8)) (local.get $s1))
    (v128.store (i32.add (global.get $S2) (local.get $i8)) (local.get $s2))
    (v128.store (i32.add (global.get $P) (local.get $i8)) (local.get $p))
    (v128.store (i32.add (global.get $a) (local.get $i8)) (local.get $av))
    (v128.store (i32.add (global.get $b) (local.get $i8)) (local.get $bv))
    (if (global.get $wantStats)
      (then
        (local.set $n (f64.load (i32.sub (local.get $jr) (i32.const 48))))
        (call $stat (local.get $m0) (i32.sub (local.get $r0) (local.get $recStep)) (local.get $n)
          (f64x2.extract_lane 0 (local.get $s1)) (f64x2.extract_lane 0 (local.get $s2)) (f64x2.extract_lane 0 (local.get $p)))
        (call $stat (local.get $m1) (i32.sub (local.get $r1) (local.get $recStep)) (local.get $n)
          (f64x2.extract_lane 1 (local.get $s1)) (f64x2.extract_lane 1 (local.get $s2)) (f64x2.extract_lane 1 (local.get $p))))))

  ;; updateFused: K new checkpoints over parameters [i0, i1), two at a time, then the odd one.
  ;; Adds to the per-checkpoint error/norm lanes in $jrec and to $mc/$r2s (the last checkpoint's
  ;; statistics). $anyConst: one byte per mode, nonzero when its reference is constant at some
  ;; checkpoint of the call.
  (func (export "update")
    (param $w i32) (param $stride i32) (param $K i32) (param $M i32) (param $i0 i32) (param $i1 i32)
    (param $mode i32) (param $mb i32) (param $shift i32) (param $S1 i32) (param $S2 i32) (param $P i32)
    (param $rec i32) (param $jrec i32) (param $anyConst i32) (param $a i32) (param $b i32)
    (param $mc i32) (param $r2s i32) (param $stats i32)
    (local $i i32)
    (global.set $wantStats (local.get $stats))
    (global.set $w (local.get $w))
    (global.set $stride4 (i32.shl (local.get $stride) (i32.const 2)))
    (global.set $K (local.get $K))
    (global.set $recStep (i32.shl (local.get $M) (i32.const 6)))
    (global.set $mode (local.get $mode))
    (global.set $mb (local.get $mb))
    (global.set $shift (local.get $shift))
    (global.set $S1 (local.get $S1))
    (global.set $S2 (local.get $S2))
    (global.set $P (local.get $P))
    (global.set $rec (local.get $rec))
    (global.set $jrec (local.get $jrec))
    (global.set $anyConst (local.get $anyConst))
    (global.set $a (local.get $a))
    (global.set $b (local.get $b))
    (global.set $mc (local.get $mc))
    (global.set $r2s (local.get $r2s))
    (local.set $i (local.get $i0))
    (block $done
      (loop $pairs
        (br_if $done (i32.ge_u (i32.add (local.get $i) (i32.const 1)) (local.get $i1)))
        (call $update2 (local.get $i))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $pairs)))
    (if (i32.lt_u (local.get $i) (local.get $i1)) (then (call $update1 (local.get $i) (i32.const 0)))))

  ;; The warm-up solve over parameters [i0, i1) from the sums in place: a, b, the
  ;; statistics, and the error at row K−1 (whose references are the records' +24) added to
  ;; $err[0] (errSq) and $err[1] (normSq). $rec holds one record per mode (the fit at F).
  (func (export "initSolve")
    (param $w i32) (param $stride i32) (param $K i32) (param $i0 i32) (param $i1 i32)
    (param $mode i32) (param $mb i32) (param $shift i32) (param $S1 i32) (param $S2 i32) (param $P i32)
    (param $rec i32) (param $n f64) (param $invN f64) (param $a i32) (param $b i32) (param $err i32)
    (param $mc i32) (param $r2s i32) (param $stats i32)
    (local $i i32) (local $m i32) (local $r i32) (local $i8 i32) (local $lastOff i32)
    (local $c f64) (local $s1 f64) (local $s2 f64) (local $p f64) (local $ai f64) (local $bi f64)
    (local $x f64) (local $cm f64) (local $xbar f64) (local $R1 f64) (local $e f64) (local $errSq f64) (local $normSq f64)
    (global.set $wantStats (local.get $stats))
    (global.set $mode (local.get $mode))
    (global.set $mb (local.get $mb))
    (global.set $mc (local.get $mc))
    (global.set $r2s (local.get $r2s))
    (local.set $lastOff (i32.add (local.get $w) (i32.mul (i32.sub (local.get $K) (i32.const 1)) (i32.shl (local.get $stride) (i32.const 2)))))
    (local.set $errSq (f64.load (local.get $err)))
    (local.set $normSq (f64.load offset=8 (local.get $err)))
    (local.set $i (local.get $i0))
    (block $done
      (loop $params
        (br_if $done (i32.ge_u (local.get $i) (local.get $i1)))
        (local.set $m
          (if (result i32) (i32.eq (local.get $mb) (i32.const 1))
            (then (i32.load8_u (i32.add (local.get $mode) (local.get $i))))
            (else (i32.load16_u (i32.add (local.get $mode) (i32.shl (local.get $i) (i32.const 1)))))))
        (local.set $r (i32.add (local.get $rec) (i32.shl (local.get $m) (i32.const 6))))
        (local.set $i8 (i32.shl (local.get $i) (i32.const 3)))
        (local.set $c (f64.load (i32.add (local.get $shift) (local.get $i8))))
        (local.set $s1 (f64.load (i32.add (local.get $S1) (local.get $i8))))
        (local.set $s2 (f64.load (i32.add (local.get $S2) (local.get $i8))))
        (local.set $p (f64.load (i32.add (local.get $P) (local.get $i8))))
        (if (f64.ne (f64.load offset=32 (local.get $r)) (f64.const 0))
          (then
            (local.set $cm (f64.load offset=40 (local.get $r)))
            (local.set $xbar (f64.add (local.get $c) (f64.div (local.get $s1) (local.get $n))))
            (local.set $ai (f64.div (f64.mul (local.get $cm) (local.get $xbar))
                                    (f64.add (f64.mul (local.get $cm) (local.get $cm)) (f64.const 1))))
            (local.set $bi (f64.div (local.get $xbar)
                                    (f64.add (f64.mul (local.get $cm) (local.get $cm)) (f64.const 1)))))
          (else
            (local.set $R1 (f64.load offset=8 (local.get $r)))
            (local.set $ai (f64.mul
              (f64.sub (f64.mul (local.get $n) (local.get $p)) (f64.mul (local.get $s1) (local.get $R1)))
              (f64.load offset=16 (local.get $r))))
            (local.set $bi (f64.sub
              (f64.add (f64.mul (f64.sub (local.get $s1) (f64.mul (local.get $ai) (local.get $R1))) (local.get $invN)) (local.get $c))
              (f64.mul (local.get $ai) (f64.load offset=48 (local.get $r)))))))
        (if (local.get $stats)
          (then (call $stat (local.get $m) (local.get $r) (local.get $n) (local.get $s1) (local.get $s2) (local.get $p))))
        (f64.store (i32.add (local.get $a) (local.get $i8)) (local.get $ai))
        (f64.store (i32.add (local.get $b) (local.get $i8)) (local.get $bi))
        (local.set $x (f64.promote_f32 (f32.load (i32.add (local.get $lastOff) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $e (f64.sub (local.get $x)
          (f64.add (f64.mul (f64.promote_f32 (f32.demote_f64 (local.get $ai))) (f64.load offset=24 (local.get $r)))
                   (f64.promote_f32 (f32.demote_f64 (local.get $bi))))))
        (local.set $errSq (f64.add (local.get $errSq) (f64.mul (local.get $e) (local.get $e))))
        (local.set $normSq (f64.add (local.get $normSq) (f64.mul (local.get $x) (local.get $x))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $params)))
    (f64.store (local.get $err) (local.get $errSq))
    (f64.store offset=8 (local.get $err) (local.get $normSq)))
)
