complete -c xencons -s e -l escape -d 'Escape key that ends the session, in caret notation' -r
complete -c xencons -l token -d 'Token sent as the first line [default: $XEND_TOKEN, else the token file]' -r
complete -c xencons -l token-file -d 'File holding the token [default: $XEND_TOKEN_FILE, else xend\'s token-file from $XEND_CONFIG or /etc/xen/xend-config.sxp], read when this user can' -r -F
complete -c xencons -l cacert -d 'PEM file of the CA certificates that must have signed the console\'s certificate (implies --tls) [default: $XEND_CACERT when TLS is on for another reason, else the system\'s roots]' -r -F
complete -c xencons -l linger -d 'Pipe mode: seconds to keep copying output after the input ends' -r
complete -c xencons -l tls -d 'Speak TLS even when nothing else says so (see --cacert). Without it, TLS is used when $XEND_URL is https://, when --cacert is given, or, with no $XEND_URL, when the local xend config names xend-tls-cert (that certificate is then the one accepted). Never falls back to plain TCP'
complete -c xencons -s h -l help -d 'Print help'
complete -c xencons -s V -l version -d 'Print version'
