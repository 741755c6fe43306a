Subject: [#{{TICKET}}] New message: {{SUBJECT}}

{{NAME}} wrote on ticket #{{TICKET}}:

{{BODY}}

Reply here:

  {{BASE_URL}}/tickets/{{TICKET}}

(Further messages are not mailed until you open the ticket.)

-- 
{{SITE_NAME}}
