<?php
// The demo app: log in, see who is logged in with a counter, log out.
// Each node serves it with php-fpm behind nginx (or `php -S`:
// tests/integration/lib_web.sh); sessions live in that node's directory,
// which sessyncd replicates. NODE names the node that answered.
header('Content-Type: text/plain');
$node = getenv('NODE') ?: 'unknown';
if (($_GET['action'] ?? '') === 'health') {   // the load balancer's check: no session
    echo "node=$node ok\n";
    return;
}
session_start();
switch ($_GET['action'] ?? 'page') {
case 'login':
    session_regenerate_id(true);
    $_SESSION['user'] = (string)($_GET['user'] ?? 'alice');
    $_SESSION['counter'] = 0;
    if (isset($_GET['cart']))   // a bigger session: items 1..cart
        $_SESSION['cart'] = range(1, max(1, min(10000, (int)$_GET['cart'])));
    echo "node=$node logged-in user={$_SESSION['user']}\n";
    break;
case 'logout':
    $user = $_SESSION['user'] ?? '';
    $_SESSION = [];
    session_destroy();
    echo "node=$node logged-out user=$user\n";
    break;
default:
    if (!isset($_SESSION['user'])) {
        http_response_code(401);
        echo "node=$node not-logged-in\n";
        break;
    }
    $_SESSION['counter']++;
    echo "node=$node user={$_SESSION['user']} counter={$_SESSION['counter']}\n";
}
