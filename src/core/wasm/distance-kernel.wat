;; Row-distance kernel of the clustering step (src/core/correlation.ts) in WebAssembly SIMD, two
;; float64 lanes per vector.
;;
;; Lanes run over pairs of rows, never over the columns l: every pair's sum Σ_l (a_il − a_jl)² is
;; the same sequence of float64 subtractions, multiplications and additions over l = 0..K−1 as in
;; the scalar JavaScript path (no fused multiply-add), so the sums come out bit-identical.
;;
;; Layout (all addresses are byte offsets into the exported memory, 16-byte aligned):
;;   I    groups of 8 rows i, interleaved: a_(8g+r),l at I + 64·K·g + 64·l + 8·r (r = 0..7)
;;   J    a tile of rows j, row-major: a_jl at J + 8·K·j + 8·l
;;   acc  running sums, 8 per (group, row j): Σ for (8g+r, j) at acc + $as·g + 64·j + 8·r
;; The columns are walked in chunks of 256, outermost: a chunk of the J tile (≤ 256 KB) stays in
;; L2 while every group uses it, and a group's chunk (16 KB) stays in L1 while the rows j stream
;; past it. The running sums are stored between chunks, which keeps each pair's order over l.
(module
  (memory (export "memory") 1)

  ;; Adds Σ_l (a_il − a_jl)² to acc for the $ng groups at $I and the $nj rows j of the tile at
  ;; $J. Group g takes the rows j from max(0, $js0 + 8g) on (the rows after its first row i), in
  ;; pairs; a pair may run one past the tile, into a zero row at j = $nj. The caller zeroes acc.
  (func (export "dist")
    (param $I i32) (param $ng i32) (param $J i32) (param $K i32) (param $js0 i32) (param $nj i32)
    (param $acc i32) (param $as i32)
    (local $rs i32) (local $gs i32) (local $l0 i32) (local $n i32) (local $g i32) (local $j i32) (local $je i32)
    (local $ip0 i32) (local $ip i32) (local $end i32) (local $jp i32) (local $kp i32) (local $ap i32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128)
    (local $b v128) (local $c v128) (local $d v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $rs (i32.shl (local.get $K) (i32.const 3)))
    (local.set $gs (i32.shl (local.get $K) (i32.const 6)))
    (loop $chunks
      (local.set $n (select (i32.const 256) (i32.sub (local.get $K) (local.get $l0))
        (i32.lt_u (i32.const 256) (i32.sub (local.get $K) (local.get $l0)))))
      (local.set $g (i32.const 0))
      (loop $groups
        ;; j = max(0, js0 + 8g); je = j + (nj − j rounded up to even).
        (local.set $j (i32.add (local.get $js0) (i32.shl (local.get $g) (i32.const 3))))
        (local.set $j (select (local.get $j) (i32.const 0) (i32.gt_s (local.get $j) (i32.const 0))))
        (if (i32.lt_s (local.get $j) (local.get $nj))
          (then
            (local.set $je (i32.add (local.get $j)
              (i32.and (i32.add (i32.sub (local.get $nj) (local.get $j)) (i32.const 1)) (i32.const -2))))
            (local.set $ip0 (i32.add (i32.add (local.get $I) (i32.mul (local.get $g) (local.get $gs)))
              (i32.shl (local.get $l0) (i32.const 6))))
            (loop $pairs
              ;; Rows j and j+1: s = sums of (group, j), t = sums of (group, j+1).
              (local.set $ap (i32.add (i32.add (local.get $acc) (i32.mul (local.get $g) (local.get $as)))
                (i32.shl (local.get $j) (i32.const 6))))
              (local.set $s0 (v128.load offset=0 (local.get $ap)))
              (local.set $s1 (v128.load offset=16 (local.get $ap)))
              (local.set $s2 (v128.load offset=32 (local.get $ap)))
              (local.set $s3 (v128.load offset=48 (local.get $ap)))
              (local.set $t0 (v128.load offset=64 (local.get $ap)))
              (local.set $t1 (v128.load offset=80 (local.get $ap)))
              (local.set $t2 (v128.load offset=96 (local.get $ap)))
              (local.set $t3 (v128.load offset=112 (local.get $ap)))
              (local.set $ip (local.get $ip0))
              (local.set $end (i32.add (local.get $ip) (i32.shl (local.get $n) (i32.const 6))))
              (local.set $jp (i32.add (i32.add (local.get $J) (i32.mul (local.get $j) (local.get $rs)))
                (i32.shl (local.get $l0) (i32.const 3))))
              (local.set $kp (i32.add (local.get $jp) (local.get $rs)))
              (loop $steps
                (local.set $x0 (v128.load offset=0 (local.get $ip)))
                (local.set $x1 (v128.load offset=16 (local.get $ip)))
                (local.set $x2 (v128.load offset=32 (local.get $ip)))
                (local.set $x3 (v128.load offset=48 (local.get $ip)))
                (local.set $b (v128.load64_splat (local.get $jp)))
                (local.set $c (v128.load64_splat (local.get $kp)))
                (local.set $d (f64x2.sub (local.get $x0) (local.get $b)))
                (local.set $s0 (f64x2.add (local.get $s0) (f64x2.mul (local.get $d) (local.get $d))))
                (local.set $d (f64x2.sub (local.get $x1) (local.get $b)))
                (local.set $s1 (f64x2.add (local.get $s1) (f64x2.mul (local.get $d) (local.get $d))))
                (local.set $d (f64x2.sub (local.get $x2) (local.get $b)))
                (local.set $s2 (f64x2.add (local.get $s2) (f64x2.mul (local.get $d) (local.get $d))))
                (local.set $d (f64x2.sub (local.get $x3) (local.get $b)))
                (local.set $s3 (f64x2.add (local.get $s3) (f64x2.mul (local.get $d) (local.get $d))))
                (local.set $d (f64x2.sub (local.get $x0) (local.get $c)))
                (local.set $t0 (f64x2.add (local.get $t0) (f64x2.mul (local.get $d) (local.get $d))))
                (local.set $d (f64x2.sub (local.get $x1) (local.get $c)))
                (local.set $t1 (f64x2.add (local.get $t1) (f64x2.mul (local.get $d) (local.get $d))))
                (local.set $d (f64x2.sub (local.get $x2) (local.get $c)))
                (local.set $t2 (f64x2.add (local.get $t2) (f64x2.mul (local.get $d) (local.get $d))))
                (local.set $d (f64x2.sub (local.get $x3) (local.get $c)))
                (local.set $t3 (f64x2.add (local.get $t3) (f64x2.mul (local.get $d) (local.get $d))))
                (local.set $jp (i32.add (local.get $jp) (i32.const 8)))
                (local.set $kp (i32.add (local.get $kp) (i32.const 8)))
                (br_if $steps (i32.lt_u (local.tee $ip (i32.add (local.get $ip) (i32.const 64))) (local.get $end))))
              (v128.store offset=0 (local.get $ap) (local.get $s0))
              (v128.store offset=16 (local.get $ap) (local.get $s1))
              (v128.store offset=32 (local.get $ap) (local.get $s2))
              (v128.store offset=48 (local.get $ap) (local.get $s3))
              (v128.store offset=64 (local.get $ap) (local.get $t0))
              (v128.store offset=80 (local.get $ap) (local.get $t1))
              (v128.store offset=96 (local.get $ap) (local.get $t2))
              (v128.store offset=112 (local.get $ap) (local.get $t3))
              (br_if $pairs (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 2))) (local.get $je))))))
        (br_if $groups (i32.lt_u (local.tee $g (i32.add (local.get $g) (i32.const 1))) (local.get $ng))))
      (br_if $chunks (i32.lt_u (local.tee $l0 (i32.add (local.get $l0) (i32.const 256))) (local.get $K)))))
)
