/* The select() heartbeat client of seed 002 (shared/seeds/002_213ef884f9e357a4.txt),
 * extracted as it is: only its port changed (80 -> PORT, given with -DPORT=...
 * at compile time). tests/real_clients.rs checks this copy against the seed
 * whenever the seed is beside the checkout. Its bugs are kept: select() only
 * watches stdin (maxfd stays 0), so it never reads the socket. */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <assert.h>
#include <sys/epoll.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/time.h>

#define MAXBUF 	1024


int
main(int argc, char **argv)
{
    int             sockfd;
    int             len;
    struct sockaddr_in dest;
    char            buffer[MAXBUF];
    char            heartbeat[20] = "hello server";

    fd_set          rfds;
    struct timeval  tv;
    int             retval,
                    maxfd = -1;

    const char     *ip = "127.0.0.1";
    int             port = PORT;

    sockfd = socket(AF_INET, SOCK_STREAM, 0);
    assert(sockfd != -1);

    bzero(&dest, sizeof(dest));
    dest.sin_family = AF_INET;
    dest.sin_port = htons(port);
    inet_pton(AF_INET, ip, &dest.sin_addr);

    int ret = connect(sockfd, (struct sockaddr *) &dest, sizeof(dest));
    assert(ret != -1);

    printf ("%s","ready to start chatting\n direct input messages and enter to send message to the server\n "); 

    while (1) {
	FD_ZERO(&rfds);
	FD_SET(0, &rfds);
	maxfd = 0;

	FD_SET(sockfd, &rfds);

	if (maxfd > sockfd) {
	    maxfd = sockfd;
	}

	tv.tv_sec = 2;
	tv.tv_usec = 0;

	retval = select(maxfd + 1, &rfds, NULL, NULL, &tv);
	assert(retval != -1);

	/*
	 * 定时2s，retval=0表示时间用完 
	 */
	if (retval == 0) {
	    len = send(sockfd, heartbeat, strlen(heartbeat), 0);

	    if (len < 0) {
		printf
		    ("message '%s'failed to send!\n the error code is %d,, error message %s\n",
		     heartbeat, errno, strerror(errno));
		break;

	    } else {
		// printf("news : %s send, sent a total of %d bytes\n",
		// heartbeat, len);
		continue;
	    }


	} else {
	    if (FD_ISSET(sockfd, &rfds)) {
		bzero(buffer, MAXBUF + 1);
		len = recv(sockfd, buffer, MAXBUF, 0);

		if (len > 0) {
		    printf
			("successfully received the message:%s, %d bytes of data\n",
			 buffer, len);


		} else {

		    if (len < 0) {
			printf
			    ("failed to receive the message!\nthe error code is %d, error message is %s\n",
			     errno, strerror(errno));
		    } else {
			printf("chat to terminal\n");
			break;
		    }
		}

	    }

	    if (FD_ISSET(0, &rfds)) {
		bzero(buffer, MAXBUF);
		fgets(buffer, MAXBUF, stdin);

		if (!strncasecmp(buffer, "quit", 4)) {
		    printf("own request to terminat the chat\n");
		    break;
		}

		len = send(sockfd, buffer, strlen(buffer) + 1, 0);
		assert(len >= 0);

		printf("news %s send, sent a total %d bytes\n", buffer,
		       len);
	    }


	}


    }

    close(sockfd);

    return 0;
}
