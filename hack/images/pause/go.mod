module labelloop.local/pause

go 1.26
