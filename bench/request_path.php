<?php
// One PHP worker of bench/request_path.sh: PHP's own files handler, requests
// at a fixed rate (open loop: request k is due at start + k/rate, and its
// latency is counted from then, so a worker held up by a lock or the CPU
// shows the wait in the requests behind it too, as users queued at php-fpm
// would: no coordinated omission). Each request: session_start() on one of
// NSESS sessions, change two small values, session_write_close().
//
// usage: php request_path.php RATE SECONDS NSESS ZIPF_S SEED OUT
// ZIPF_S 0 = uniform. OUT gets one line per request: "due_us lat_us start_us
// blocked" (due time from the worker's start; latency from due to
// write_close done; session_start's own time: open, flock(LOCK_EX) wait,
// read; blocked 1 if session_start slept: on tmpfs nothing in it sleeps but
// the flock wait, so a voluntary context switch (getrusage ru_nvcsw) during
// it is a lock wait, told apart from being preempted, which is involuntary).
[$rate, $secs, $nsess, $zipf, $seed, $out] =
    [(float)$argv[1], (float)$argv[2], (int)$argv[3], (float)$argv[4], (int)$argv[5], $argv[6]];
$total = (int)($rate * $secs);
mt_srand($seed);
$cdf = [];
if ($zipf > 0) {
    $sum = 0.0;
    for ($r = 1; $r <= $nsess; $r++) {
        $sum += 1.0 / pow($r, $zipf);
        $cdf[] = $sum;
    }
    foreach ($cdf as $i => $c) {
        $cdf[$i] = $c / $sum;
    }
}
$ids = [];
for ($k = 0; $k < $total; $k++) {
    if ($zipf > 0) {
        $u = mt_rand() / mt_getrandmax();
        [$lo, $hi] = [0, $nsess - 1];
        while ($lo < $hi) {
            $mid = intdiv($lo + $hi, 2);
            if ($cdf[$mid] < $u) {
                $lo = $mid + 1;
            } else {
                $hi = $mid;
            }
        }
        $ids[] = sprintf('rp%05d', $lo);
    } else {
        $ids[] = sprintf('rp%05d', mt_rand(0, $nsess - 1));
    }
}
$lat = [];
$period = 1e9 / $rate;
$start = hrtime(true);
for ($k = 0; $k < $total; $k++) {
    $due = $start + (int)($k * $period);
    $now = hrtime(true);
    if ($now < $due) {
        time_nanosleep(0, $due - $now);
    }
    $v0 = getrusage()['ru_nvcsw'];
    $t0 = hrtime(true);
    session_id($ids[$k]);
    if (!session_start()) {
        fwrite(STDERR, "session_start failed\n");
        exit(1);
    }
    $t1 = hrtime(true);
    $blocked = getrusage()['ru_nvcsw'] > $v0 ? 1 : 0;
    $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
    $_SESSION['last'] = $k;
    if (!session_write_close()) {
        fwrite(STDERR, "session_write_close failed\n");
        exit(1);
    }
    $t2 = hrtime(true);
    $lat[] = sprintf("%d %d %d %d\n", intdiv($due - $start, 1000), intdiv($t2 - $due, 1000), intdiv($t1 - $t0, 1000), $blocked);
}
file_put_contents($out, implode('', $lat));
