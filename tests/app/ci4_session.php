<?php
// CodeIgniter 4's FileHandler (system/Session/Handlers/FileHandler.php, not
// packaged in Debian), step by step: the same file name (cookie name, md5 of
// the client's address when matchIP, then the 32-hex id), the same calls in
// the same order (fopen 'c+b', flock LOCK_EX for the whole request, chmod
// 0600 on a new file, ftruncate + rewind + fwrite in place, touch when the
// data is unchanged, unlink on destroy, GC by name pattern and mtime), under
// PHP's session module as CodeIgniter runs it. Used by t_codeigniter.sh:
//   php ci4_session.php DIR write ID KEY VALUE [IP]   set $_SESSION[KEY]
//   php ci4_session.php DIR read ID [IP]              print $_SESSION as JSON (a touch: unchanged)
//   php ci4_session.php DIR destroy ID [IP]           session_destroy() (a logout)
//   php ci4_session.php DIR gc SECONDS                the GC: unlink idle ci_session files
class Ci4FileHandler implements SessionHandlerInterface
{
    private $savePath, $filePath, $fileHandle, $fileNew, $fingerprint, $sessionID;
    private $cookieName = 'ci_session', $sessionIDRegex = '[0-9a-f]{32}';

    public function __construct(string $savePath, private ?string $ip) { $this->savePath = $savePath; }

    public function open($path, $name): bool
    {
        $this->savePath = $path;
        $this->filePath = $this->savePath . '/' . $name . ($this->ip !== null ? md5($this->ip) : '');
        return true;
    }

    public function read($id): string|false
    {
        if ($this->fileHandle === null) {
            $this->fileNew = !is_file($this->filePath . $id);
            if (($this->fileHandle = fopen($this->filePath . $id, 'c+b')) === false) return false;
            if (flock($this->fileHandle, LOCK_EX) === false) {
                fclose($this->fileHandle);
                $this->fileHandle = null;
                return false;
            }
            $this->sessionID ??= $id;
            if ($this->fileNew) {
                chmod($this->filePath . $id, 0600);
                $this->fingerprint = md5('');
                return '';
            }
        } else {
            rewind($this->fileHandle);
        }
        $data = '';
        clearstatcache();
        for ($read = 0, $length = filesize($this->filePath . $id); $read < $length; $read += strlen($buffer)) {
            if (($buffer = fread($this->fileHandle, $length - $read)) === false) break;
            $data .= $buffer;
        }
        $this->fingerprint = md5($data);
        return $data;
    }

    public function write($id, $data): bool
    {
        if ($id !== $this->sessionID) $this->sessionID = $id;
        if (!is_resource($this->fileHandle)) return false;
        if ($this->fingerprint === md5($data)) return $this->fileNew ? true : touch($this->filePath . $id);
        if (!$this->fileNew) {
            ftruncate($this->fileHandle, 0);
            rewind($this->fileHandle);
        }
        if (($length = strlen($data)) > 0) {
            for ($written = 0; $written < $length; $written += $result) {
                if (($result = fwrite($this->fileHandle, substr($data, $written))) === false) break;
            }
            if (!is_int($result)) return false;
        }
        $this->fingerprint = md5($data);
        return true;
    }

    public function close(): bool
    {
        if (is_resource($this->fileHandle)) {
            flock($this->fileHandle, LOCK_UN);
            fclose($this->fileHandle);
            $this->fileHandle = null;
            $this->fileNew = false;
        }
        return true;
    }

    public function destroy($id): bool
    {
        if ($this->close()) return is_file($this->filePath . $id) ? unlink($this->filePath . $id) : true;
        return false;
    }

    public function gc($max_lifetime): int|false
    {
        if (!is_dir($this->savePath) || ($directory = opendir($this->savePath)) === false) return false;
        $ts = time() - $max_lifetime;
        $pattern = $this->ip !== null ? '[0-9a-f]{32}' : '';
        $pattern = sprintf('#\A%s' . $pattern . $this->sessionIDRegex . '\z#', preg_quote($this->cookieName, '#'));
        $collected = 0;
        while (($file = readdir($directory)) !== false) {
            if (preg_match($pattern, $file) !== 1 || !is_file($this->savePath . '/' . $file)
                || ($mtime = filemtime($this->savePath . '/' . $file)) === false || $mtime > $ts) continue;
            unlink($this->savePath . '/' . $file);
            $collected++;
        }
        closedir($directory);
        return $collected;
    }
}

[, $dir, $action] = $argv;
if ($action === 'gc') {
    $h = new Ci4FileHandler($dir, null);
    $h->open($dir, 'ci_session');
    echo 'gc=', $h->gc((int)$argv[3]), "\n";
    exit(0);
}
$id = $argv[3];
$ip = $action === 'write' ? ($argv[6] ?? null) : ($argv[4] ?? null);
ini_set('session.use_cookies', '0');
ini_set('session.use_strict_mode', '0');
ini_set('session.gc_probability', '0');
ini_set('session.save_path', $dir);
session_set_save_handler(new Ci4FileHandler($dir, $ip), true);
session_name('ci_session');
session_id($id);
if (!session_start()) exit(1);
switch ($action) {
case 'write': $_SESSION[$argv[4]] = $argv[5]; break;
case 'read': echo json_encode($_SESSION), "\n"; break;
case 'destroy': session_destroy(); exit(0);
default: fwrite(STDERR, "unknown action $action\n"); exit(2);
}
session_write_close();
