<?php
// One Laravel request, as far as its session goes, on Debian's
// php-illuminate-session (Laravel 8): the real Illuminate\Session\Store over
// the real FileSessionHandler, the `file` driver's default. Used by
// tests/integration/t_laravel.sh:
//   php laravel.php DIR login '' NAME   a user logs in (Laravel migrates the session id on login)
//   php laravel.php DIR whoami ID       prints user=NAME, or user=- for a guest
//   php laravel.php DIR logout ID       Auth::logout + $request->session()->invalidate()
//   php laravel.php DIR gc              the GC lottery's draw: FileSessionHandler::gc(lifetime)
// Every request but gc ends with Store::save(), which writes the file
// (Laravel writes on every request), and prints id=ID.
require '/usr/share/php/Illuminate/Session/autoload.php';

$dir = $argv[1];
$action = $argv[2];
$id = ($argv[3] ?? '') !== '' ? $argv[3] : null;
$minutes = (int)(getenv('LARAVEL_LIFETIME') ?: 120);   // config/session.php 'lifetime'
$handler = new Illuminate\Session\FileSessionHandler(new Illuminate\Filesystem\Filesystem(), $dir, $minutes);

if ($action === 'gc') {
    $handler->gc($minutes * 60);
    echo "gc=done\n";
    exit(0);
}
$store = new Illuminate\Session\Store('laravel_session', $handler, $id);
$store->start();
switch ($action) {
case 'login':
    $store->migrate(true);          // SessionGuard::updateSession
    $store->put('login_web', $argv[4]);
    break;
case 'whoami':
    echo 'user=', $store->get('login_web', '-'), "\n";
    break;
case 'logout':
    $store->invalidate();           // flush + migrate(true): the old file is destroyed
    break;
default:
    fwrite(STDERR, "unknown action $action\n");
    exit(2);
}
$store->save();
echo 'id=', $store->getId(), "\n";
